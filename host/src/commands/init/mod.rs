//! `fail2pvefw init`: from nothing to a working set-up in one command.
//! Takes the values from flags or asks on the terminal, writes the
//! configuration (mode 0600), runs the trust step, offers to create the
//! IPSet, and prints what to add to jail.local.
//!
//! The file is written before PVE is contacted, so nothing typed is lost
//! when the node is down; the remaining steps are the ordinary `trust` and
//! `doctor` commands, which the errors name.

use crate::cli::{DEFAULT_CONFIG_PATH, InitArgs};
use crate::config::{Config, DEFAULT_IPSET, DEFAULT_STATE_DIR, HostPort, Token, parse_fingerprint};
use crate::error::{Failure, Result};
use crate::output;
use crate::transport::client::{Client, HttpResponse, Outcome};
use crate::transport::probe::{probe, why_refused};
use std::path::{Path, PathBuf};

mod file;
mod prompt;

use file::{TokenSource, Values, render, write_config};
use prompt::Prompt;

/// The example the Debian package installs: `init` may replace it without --force.
pub const EXAMPLE: &str = include_str!("../../../../packaging/config.example.toml");

/// `fail2pvefw init`.
pub fn run(args: &InitArgs) -> Result<String> {
    refuse_to_overwrite(&args.output, args.force)?;
    let mut prompt = Prompt::new();
    let values = gather(args, &mut prompt)?;
    write_config(&args.output, &render(&values))?;
    output::line(&format!("wrote '{}' (mode 0600)", args.output.display()));
    let config = Config::load(&args.output)?;
    let again = format!("fail2pvefw --config '{}'", args.output.display());
    trust_step(&config, &values, args.yes).map_err(|f| with_next(f, &format!("{again} trust")))?;
    // The client reads the pin the trust step may have stored.
    let ipset_note = ipset_step(&config, args.create_ipset, &mut prompt);
    output::line(&format!("\n{}", snippet(&values.ipset, &args.output)));
    match ipset_note {
        Ok(note) => Ok(format!("{note}\n\nNext: {again} doctor")),
        Err(failure) => Err(with_next(failure, &format!("{again} doctor"))),
    }
}

fn with_next(failure: Failure, command: &str) -> Failure {
    let hint = failure.hint.clone().unwrap_or_default();
    let text =
        format!("{hint}\n\nThe configuration is written; once this is fixed, run:\n  {command}");
    failure.hint(text.trim_start().to_string())
}

fn refuse_to_overwrite(path: &Path, force: bool) -> Result<()> {
    match std::fs::read_to_string(path) {
        Ok(text) if !force && text != EXAMPLE => Err(Failure::input(format!(
            "'{}' exists; nothing was written",
            path.display()
        ))
        .hint("Pass --force to replace it, or --output PATH to write another file.")),
        _ => Ok(()),
    }
}

/// Flags first; what is missing is asked on a terminal, else an error.
fn gather(args: &InitArgs, prompt: &mut Prompt) -> Result<Values> {
    let mut missing = Vec::new();
    let mut hosts = args.host.clone();
    if hosts.is_empty() {
        match prompt.ask("PVE node (host or host:port)", None, false)? {
            Some(host) => hosts.push(host),
            None => missing.push("--host"),
        }
    }
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(TokenSource::Inline(token.trim().to_string())),
        (None, Some(file)) => Some(TokenSource::File(absolute(file)?)),
        (None, None) => prompt
            .ask(
                "API token (USER@REALM!TOKENID=SECRET, not shown)",
                None,
                true,
            )?
            .map(TokenSource::Inline),
    };
    if token.is_none() {
        missing.push("--token (or --token-file)");
    }
    if !missing.is_empty() {
        return Err(Failure::input(format!(
            "init: missing {}, and there is no terminal to ask on; nothing was written",
            missing.join(" and ")
        ))
        .hint("Pass them as flags, e.g.:\n  fail2pvefw init --host 192.168.0.1 --token-file /etc/fail2pvefw/token --yes"));
    }
    let ipset = match &args.ipset {
        Some(ipset) => ipset.clone(),
        None => prompt
            .ask("datacenter IPSet", Some(DEFAULT_IPSET), false)?
            .unwrap_or_else(|| DEFAULT_IPSET.into()),
    };
    let values = Values {
        hosts,
        token: token.expect("checked above"),
        ipset,
        state_dir: absolute(
            args.state_dir
                .as_deref()
                .unwrap_or(Path::new(DEFAULT_STATE_DIR)),
        )?,
        fingerprint: args.fingerprint.clone(),
        ca_file: args.ca_file.as_deref().map(absolute).transpose()?,
    };
    check(&values)?;
    Ok(values)
}

/// Bad values are bad input (exit 2), named, never quoting the secret.
fn check(values: &Values) -> Result<()> {
    for host in &values.hosts {
        HostPort::parse(host).map_err(|e| Failure::input(format!("--host: {e}")))?;
    }
    let token_text = match &values.token {
        TokenSource::Inline(text) => text.clone(),
        TokenSource::File(path) => std::fs::read_to_string(path)
            .map_err(|e| Failure::input(format!("--token-file '{}': {e}", path.display())))?,
    };
    Token::parse(&token_text).map_err(|e| Failure::input(format!("--token: {e}")))?;
    if !valid_ipset(&values.ipset) {
        return Err(Failure::input(format!(
            "--ipset '{}' is not a datacenter IPSet name: 2-64 lower-case letters, digits, '-' or '_', starting with a letter",
            values.ipset
        )));
    }
    if let Some(fp) = &values.fingerprint {
        parse_fingerprint(fp).map_err(|e| Failure::input(format!("--fingerprint: {e}")))?;
    }
    Ok(())
}

/// PVE's `[A-Za-z][A-Za-z0-9_-]+`, in lower case (PVE lower-cases names on re-read).
fn valid_ipset(name: &str) -> bool {
    let mut chars = name.chars();
    (2..=64).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c))
}

/// Relative paths on the command line mean the current folder, but in
/// the file they would mean the file's folder: write them absolute.
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Failure::input(format!("'{}': {e}", path.display())))
}

/// With neither --fingerprint nor --ca-file, `trust` decides (shows the
/// certificate, asks or takes --yes, stores the pin). With one of them,
/// the node must pass it: a wrong fingerprint is not pinned over.
fn trust_step(config: &Config, values: &Values, yes: bool) -> Result<()> {
    if values.fingerprint.is_none() && values.ca_file.is_none() {
        let done = super::trust::run(config, yes)?;
        output::line(&done);
        return Ok(());
    }
    let presented = probe(&config.pve, &config.state_dir)?;
    match &presented.refusal {
        None => {
            output::line(&format!(
                "the certificate of {} is trusted by the configuration",
                config.pve.host
            ));
            Ok(())
        }
        Some(refusal) => Err(Failure::config(format!(
            "the certificate of {} is not trusted: {}\n  presented: {}",
            config.pve.host,
            why_refused(refusal),
            crate::config::format_fingerprint(&presented.fingerprint)
        ))
        .hint(
            "Check --fingerprint or --ca-file against node → System → Certificates in the PVE GUI.",
        )),
    }
}

/// Reports the IPSet, creating it on --create-ipset or a yes.
fn ipset_step(config: &Config, create: bool, prompt: &mut Prompt) -> Result<String> {
    let name = &config.ipset;
    let client = Client::new(&config.pve, &config.state_dir)?;
    let refused = |r: HttpResponse| {
        Failure::pve(format!(
            "IPSet '{name}': PVE refused: {} {}",
            r.status, r.reason
        ))
    };
    match client.request("GET", &format!("/cluster/firewall/ipset/{name}"), &[]) {
        Outcome::Response(r) if r.status == 200 => return Ok(format!("IPSet '{name}' exists")),
        Outcome::Response(r) if r.reason.contains("no such IPSet") => {}
        Outcome::Response(r) => return Err(refused(r)),
        Outcome::Failed(failure) => return Err(failure),
    }
    let create = create
        || prompt
            .ask(
                &format!("IPSet '{name}' does not exist; create it (yes/no)"),
                Some("yes"),
                false,
            )?
            .is_some_and(|a| a.starts_with(['y', 'Y']));
    if !create {
        return Ok(format!(
            "IPSet '{name}' does not exist yet: create it with `fail2pvefw init --create-ipset …`, or on a node:\n  pvesh create /cluster/firewall/ipset --name {name} --comment fail2ban"
        ));
    }
    let params = [
        ("name".to_string(), name.clone()),
        (
            "comment".to_string(),
            "fail2ban bans (fail2pvefw)".to_string(),
        ),
    ];
    match client.request("POST", "/cluster/firewall/ipset", &params) {
        Outcome::Response(r) if r.status == 200 => Ok(format!("created the datacenter IPSet '{name}'")),
        Outcome::Response(r) if r.status == 403 => Err(refused(r).hint(format!(
            "Creating an IPSet needs Sys.Modify on '/'. Grant it to the token '{}', or create it on a node:\n  pvesh create /cluster/firewall/ipset --name {name} --comment fail2ban",
            config.pve.token.id
        ))),
        Outcome::Response(r) => Err(refused(r)),
        Outcome::Failed(failure) => Err(failure),
    }
}

/// What to add to jail.local, and the timer to enable.
fn snippet(ipset: &str, config: &Path) -> String {
    let config_arg = if config == Path::new(DEFAULT_CONFIG_PATH) {
        String::new()
    } else {
        format!(", config={}", config.display())
    };
    format!(
        "Add fail2pvefw to each jail that should ban in PVE, in /etc/fail2ban/jail.local:\n\n  \
         [sshd]\n  enabled = true\n  action  = %(action_)s\n            fail2pvefw[ipset={ipset}{config_arg}]\n\n\
         then: fail2ban-client reload\n\
         and run `sync` periodically: systemctl enable --now fail2pvefw-sync.timer\n\n\
         Faster, with no process per ban: run the service and use the Python action instead:\n\n  \
         systemctl enable --now fail2pvefw\n  \
         action  = %(action_)s\n            fail2pvefw.py[ipset={ipset}{config_arg}]\n\n\
         (the service runs `sync` itself; the timer is then optional)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipset_names_as_pve_keeps_them() {
        assert!(valid_ipset("fail2ban"));
        assert!(valid_ipset("f2b-web_1"));
        assert!(!valid_ipset("F2B"));
        assert!(!valid_ipset("f"));
        assert!(!valid_ipset("1ab"));
    }

    #[test]
    fn example_config_may_be_replaced_but_not_a_real_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, EXAMPLE).unwrap();
        assert!(refuse_to_overwrite(&path, false).is_ok());
        std::fs::write(&path, "[pve]\n").unwrap();
        assert_eq!(
            refuse_to_overwrite(&path, false).unwrap_err().kind,
            crate::error::Kind::Input
        );
        assert!(refuse_to_overwrite(&path, true).is_ok());
    }
}
