//! The TOML file as written by the admin, before it is checked.
//!
//! Every table denies unknown keys, so a typo (`fingerprnt = …`) is an error
//! that names the key instead of a setting silently ignored.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// A policy module to run instead of the embedded default.
    pub policy: Option<PathBuf>,
    #[serde(default)]
    pub pve: Pve,
    #[serde(default)]
    pub state: State,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub rules: Rules,
    #[serde(default)]
    pub metrics: Metrics,
    /// Free-form values for a custom policy (`settings.get("policy.NAME")`).
    #[serde(default)]
    pub policy_settings: std::collections::BTreeMap<String, ::toml::Value>,
}

/// `[limits]`: the sandbox of each policy call.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Fuel per call (about one wasm instruction each).
    pub fuel: Option<u64>,
    /// Memory the policy may grow to, in MiB.
    pub memory_mib: Option<u64>,
}

/// `[rules]`: what the default policy refuses or widens, what PVE paths a
/// policy may use beyond the IPSets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default)]
    pub never_ban: Vec<String>,
    pub ipv6_prefix: Option<u8>,
    #[serde(default)]
    pub allow_paths: Vec<String>,
    /// The widest IPv4 entry the host lets a policy write (prefix length).
    pub widest_ipv4: Option<u8>,
    /// The widest IPv6 entry the host lets a policy write (prefix length).
    pub widest_ipv6: Option<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pve {
    /// `host`, `host:port`, `[v6]:port`; port 8006 by default.
    pub host: Option<String>,
    /// Several nodes of one cluster, tried in order; instead of `host`.
    pub hosts: Option<Vec<String>>,
    /// `USER@REALM!TOKENID=SECRET`, optionally prefixed with `PVEAPIToken=`.
    pub token: Option<String>,
    /// A file holding the token string, instead of `token`.
    pub token_file: Option<PathBuf>,
    /// SHA-256 fingerprint(s) of the node certificate, as the GUI shows them.
    pub fingerprint: Option<OneOrMany>,
    /// The cluster CA (`/etc/pve/pve-root-ca.pem`) that signs node certificates.
    pub ca_file: Option<PathBuf>,
    /// The datacenter IPSet; `fail2ban` by default.
    pub ipset: Option<String>,
    /// Seconds to wait for PVE (connect and each request); 10 by default.
    pub timeout: Option<f64>,
}

/// `[metrics]`: the node exporter's textfile, written after each drain.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub textfile: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub dir: Option<PathBuf>,
    /// This instance's name in the ownership tags of its entries.
    pub instance: Option<String>,
}

/// `fingerprint = "AA:…"` or `fingerprint = ["AA:…", "BB:…"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// Parses the text, with the error message of the `toml` crate, which names
/// the line, the column and the unknown or mistyped key.
pub fn parse(text: &str) -> Result<File, String> {
    ::toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let err = parse("[pve]\nhost = \"a\"\nfingerprnt = \"x\"\n").unwrap_err();
        assert!(err.contains("fingerprnt"), "{err}");
    }

    #[test]
    fn unknown_table_is_named() {
        let err = parse("[pev]\nhost = \"a\"\n").unwrap_err();
        assert!(err.contains("pev"), "{err}");
    }

    #[test]
    fn fingerprint_may_be_a_list() {
        let file = parse("[pve]\nfingerprint = [\"a\", \"b\"]\n").unwrap();
        assert_eq!(file.pve.fingerprint.unwrap().into_vec(), ["a", "b"]);
    }
}
