//! `/etc/pve/firewall/cluster.fw` (spec §7), read as pve-firewall's
//! `load_clusterfw_conf` reads it and written as `save_clusterfw_conf`
//! writes it. PVE parses the whole file on every request and rewrites it
//! whole on every write, so whatever the parser drops or normalises is gone
//! after the next write, and whatever it keeps comes back in PVE's layout.
//!
//! Strings that come from the file hold its bytes one `char` per byte, as
//! Perl holds them (see `text.rs`); comments are decoded UTF-8.

mod options;
mod parse;
mod rules;
mod write;

pub use rules::Rule;
pub use write::{MAX_FILE_SIZE, ipset_section_bytes};

use crate::error::ApiError;
use std::collections::BTreeMap;

/// The parsed file. Map keys are names as the parser saw them (ipset and
/// group names lower-cased) or as a write handler set them (as given),
/// which is the §2.1 quirk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conf {
    /// `[OPTIONS]`: the options PVE knows, keys lower-cased, values as
    /// `parse_clusterfw_option` leaves them (`DROP`, `1`, …).
    pub options: BTreeMap<String, String>,
    /// `[ALIASES]`, by lower-cased name.
    pub aliases: BTreeMap<String, Alias>,
    pub ipsets: BTreeMap<String, IpSet>,
    /// `[RULES]`.
    pub rules: Vec<Rule>,
    /// `[group NAME]` sections: the security groups.
    pub groups: BTreeMap<String, Group>,
}

/// One `[IPSET name]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    /// Kept even when empty or "0": only the writer decides what is
    /// truthy (§2).
    pub comment: Option<String>,
    pub entries: Vec<Entry>,
}

/// One ipset entry, as the parser or a write handler left it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// `None` for a line that is not `[!]cidr [# comment]`: PVE keeps
    /// such a line as an entry without cidr (item 2 of issue 16).
    pub cidr: Option<String>,
    pub comment: Option<String>,
    pub nomatch: bool,
    /// The parser's complaint, shown as `errors.cidr` by `GET`.
    pub error: Option<String>,
}

impl Entry {
    /// An entry as a write handler stores it.
    pub fn new(cidr: &str, comment: Option<&str>, nomatch: bool) -> Entry {
        Entry {
            cidr: Some(cidr.to_string()),
            comment: comment.map(str::to_string),
            nomatch,
            error: None,
        }
    }

    /// The cidr as Perl compares it: an undefined one is `""`.
    pub fn cidr_str(&self) -> &str {
        self.cidr.as_deref().unwrap_or("")
    }
}

/// One `[ALIASES]` line: `name cidr [# comment]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alias {
    /// As written (the map key is the lower-cased name).
    pub name: String,
    /// After `parse_ip_or_cidr`: an exact `/32` or `/128` dropped.
    pub cidr: String,
    pub comment: Option<String>,
}

/// One security group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub comment: Option<String>,
    pub rules: Vec<Rule>,
}

impl Conf {
    /// `generic_fw_config_parser` for the cluster: never fails; what it
    /// cannot read it drops or keeps with an error, as PVE does. `now`
    /// (Unix seconds) is the clock `enable: <timestamp>` is judged by.
    pub fn parse(raw: &[u8], now: u64) -> Conf {
        parse::parse(raw, now)
    }

    /// `save_clusterfw_conf`: the bytes PVE writes (empty: PVE deletes the
    /// file). `Err` is the message PVE dies with (a rule of unknown type).
    pub fn write(&self) -> Result<Vec<u8>, String> {
        write::write(self)
    }

    /// `load_clusterfw_conf`: the parse, then the check of the
    /// `log_ratelimit` option, whose failure fails every request that
    /// reads the file (item 5 of issue 16).
    pub(crate) fn load(raw: &[u8], now: u64) -> Result<Conf, ApiError> {
        let conf = Conf::parse(raw, now);
        if let Some(value) = conf.options.get("log_ratelimit") {
            options::check_log_ratelimit(value)?;
        }
        Ok(conf)
    }

    /// The datacenter alias of this name, looked up case-insensitively.
    pub fn alias(&self, name: &str) -> Option<&Alias> {
        self.aliases.get(&name.to_ascii_lowercase())
    }
}
