//! The configuration file `init` writes: rendered from the checked values,
//! written private (0600) and atomically.

use crate::error::{Failure, Result};
use std::path::{Path, PathBuf};

/// What goes into the file, checked.
pub(super) struct Values {
    pub(super) hosts: Vec<String>,
    pub(super) token: TokenSource,
    pub(super) ipset: String,
    pub(super) state_dir: PathBuf,
    pub(super) fingerprint: Option<String>,
    pub(super) ca_file: Option<PathBuf>,
}

pub(super) enum TokenSource {
    Inline(String),
    File(PathBuf),
}

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

pub(super) fn render(v: &Values) -> String {
    let mut text = String::from(
        "# fail2pvefw configuration, written by `fail2pvefw init`.\n# Keep it private (mode 0600): it holds the API token.\n\n[pve]\n",
    );
    if let [one] = &v.hosts[..] {
        text.push_str(&format!("host = {}\n", quoted(one)));
    } else {
        let all: Vec<String> = v.hosts.iter().map(|h| quoted(h)).collect();
        text.push_str(&format!("hosts = [{}]\n", all.join(", ")));
    }
    match &v.token {
        TokenSource::Inline(token) => text.push_str(&format!("token = {}\n", quoted(token))),
        TokenSource::File(path) => text.push_str(&format!(
            "token_file = {}\n",
            quoted(&path.display().to_string())
        )),
    }
    if let Some(fp) = &v.fingerprint {
        text.push_str(&format!("fingerprint = {}\n", quoted(fp)));
    }
    if let Some(ca) = &v.ca_file {
        text.push_str(&format!(
            "ca_file = {}\n",
            quoted(&ca.display().to_string())
        ));
    }
    text.push_str(&format!(
        "ipset = {}\n\n[state]\ndir = {}\n",
        quoted(&v.ipset),
        quoted(&v.state_dir.display().to_string())
    ));
    text
}

/// Beside the target, mode 0600 from the start, then rename.
pub(super) fn write_config(path: &Path, text: &str) -> Result<()> {
    let failed = |e: std::io::Error| {
        Failure::config(format!("cannot write '{}': {e}", path.display()))
            .hint("Run as root, or pass --output PATH to a folder you may write to.")
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    crate::state::files::write_atomically(path, text.as_bytes(), 0o600).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn rendered_config_loads() {
        let dir = tempfile::tempdir().unwrap();
        let values = Values {
            hosts: vec!["192.0.2.10".into(), "pve2.test:8007".into()],
            token: TokenSource::Inline("a@pve!tt=s\"e\\cret".into()),
            ipset: "f2b".into(),
            state_dir: dir.path().join("state"),
            fingerprint: Some(["AB"; 32].join(":")),
            ca_file: None,
        };
        let path = dir.path().join("c.toml");
        write_config(&path, &render(&values)).unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.pve.token.secret(), "s\"e\\cret");
        assert_eq!(config.pve.fallbacks.len(), 1);
        assert_eq!(config.ipset, "f2b");
    }
}
