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
    /// fail2pvefw as a CrowdSec bouncer (`fail2pvefw crowdsec`).
    pub crowdsec: Option<CrowdSec>,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default)]
    pub serve: Serve,
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
    /// The widest IPv4 network any entry may cover (a prefix length).
    pub widest_ipv4: Option<u8>,
    /// The widest IPv6 network any entry may cover (a prefix length).
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
    /// At most this many PVE writes a second, from every process.
    pub writes_per_second: Option<f64>,
}

/// `[crowdsec]`: the LAPI, the bouncer key, the filters and the budget.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrowdSec {
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub api_key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub update_frequency: Option<f64>,
    pub resync: Option<f64>,
    pub ipset: Option<String>,
    pub types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub origins: Vec<String>,
    #[serde(default)]
    pub scenarios_containing: Vec<String>,
    #[serde(default)]
    pub scenarios_not_containing: Vec<String>,
    pub max_entries: Option<u32>,
    pub max_bytes: Option<u64>,
    pub aggregate_ipv4: Option<u8>,
    pub aggregate_ipv6: Option<u8>,
    pub aggregate_min: Option<u32>,
}

/// `[dns]`: host names whose addresses `fail2pvefw dns` keeps in an accept list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// What `fail2pvefw dns` without names keeps.
    #[serde(default)]
    pub names: Vec<String>,
    /// The accept list; `[pve] ipset` by default (which `dns` refuses).
    pub ipset: Option<String>,
    /// The names' last addresses are never banned; true by default.
    pub never_ban_resolved: Option<bool>,
}

/// `[metrics]`: the node exporter's textfile, written after each drain.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub textfile: Option<PathBuf>,
    /// `fail2pvefw serve`: serve `/metrics` on this loopback address.
    pub listen: Option<String>,
}

/// `[serve]`: the resident `fail2pvefw serve` and its local API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    /// The Unix socket of the local API.
    pub socket: Option<PathBuf>,
    /// The group that may use the socket (mode 0660); root's by default.
    pub group: Option<String>,
    /// Seconds between two `sync` runs of the service; 300 by default.
    pub sync_interval: Option<f64>,
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

/// Parses the text. An error names the line, the column, the parser's words
/// and the key, never a value or the source line (`redact`): the file holds
/// the token.
pub fn parse(text: &str) -> Result<File, String> {
    ::toml::from_str(text).map_err(|e| super::redact::toml_error(text, &e, &names()))
}

/// Every table and key name of the file, which errors may show: the field
/// names serde knows for each table (a table added to `File` is added here).
pub fn names() -> Vec<&'static str> {
    let mut names = Vec::new();
    names.extend(fields::<File>());
    names.extend(fields::<Pve>());
    names.extend(fields::<State>());
    names.extend(fields::<Limits>());
    names.extend(fields::<Rules>());
    names.extend(fields::<Metrics>());
    names.extend(fields::<CrowdSec>());
    names.extend(fields::<Dns>());
    names.extend(fields::<Serve>());
    names
}

/// The field names `#[derive(Deserialize)]` gave a struct, asked of it by
/// a deserializer that only listens.
fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    struct Listen<'a>(&'a mut &'static [&'static str]);
    impl<'de> de::Deserializer<'de> for Listen<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("listened"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Listen(&mut fields));
    fields
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
    fn names_are_those_of_every_table() {
        let names = names();
        for name in [
            "pve",
            "policy_settings",
            "token",
            "token_file",
            "dir",
            "fuel",
            "widest_ipv6",
            "textfile",
            "dns",
            "names",
            "never_ban_resolved",
            "serve",
            "socket",
            "sync_interval",
            "listen",
        ] {
            assert!(names.contains(&name), "{name}: {names:?}");
        }
    }

    #[test]
    fn an_error_shows_no_value() {
        let secret = "6043ef45-632a-428b-8777-4b1eb5587d58";
        let err = parse(&format!("[pve]\ntimeout = \"{secret}\"\n")).unwrap_err();
        assert_eq!(
            err,
            "line 2, column 11: invalid type: string \"…\", expected f64 (key 'timeout' in [pve])"
        );
    }

    // See: issue 13, item 2
    #[test]
    fn a_dns_error_names_its_key_and_shows_no_value() {
        let secret = "6043ef45-632a-428b-8777-4b1eb5587d58";
        let err = parse(&format!("[dns]\nnever_ban_resolved = \"{secret}\"\n")).unwrap_err();
        assert!(err.contains("(key 'never_ban_resolved' in [dns])"), "{err}");
        assert!(!err.contains("6043ef45"), "{err}");
        let err = parse("[dns]\nname = [\"home.test\"]\n").unwrap_err();
        assert!(err.contains("name") && err.contains("names"), "{err}");
        let file = parse("[dns]\nnames = [\"a.test\"]\nipset = \"trusted\"\n").unwrap();
        assert_eq!(file.dns.names, ["a.test"]);
    }

    #[test]
    fn fingerprint_may_be_a_list() {
        let file = parse("[pve]\nfingerprint = [\"a\", \"b\"]\n").unwrap();
        assert_eq!(file.pve.fingerprint.unwrap().into_vec(), ["a", "b"]);
    }
}
