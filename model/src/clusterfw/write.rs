//! pve-firewall's `save_clusterfw_conf`: `[OPTIONS]`, `[ALIASES]`, one
//! `[IPSET name]` per ipset sorted by name, `[RULES]`, then the
//! `[group name]` sections sorted; each header followed by a blank line and
//! each section ended by one. This is the one place the size of an IPSet
//! section is computed: [`ipset_section_bytes`] writes it.

use super::Conf;
use crate::text::{bytes_of, truthy, written_comment};
use std::collections::BTreeMap;

/// pmxcfs's limit on one file (`MEMDB_MAX_FILE_SIZE`, §8.3): a write that
/// would make `cluster.fw` larger fails with 500 `… - File too large`.
pub const MAX_FILE_SIZE: usize = 1024 * 1024;

pub(super) fn write(conf: &Conf) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    if !conf.options.is_empty() {
        out.extend_from_slice(b"[OPTIONS]\n\n");
        for (key, value) in &conf.options {
            out.extend(bytes_of(&format!("{key}: {value}\n")));
        }
        out.push(b'\n');
    }
    if !conf.aliases.is_empty() {
        out.extend_from_slice(b"[ALIASES]\n\n");
        for alias in conf.aliases.values() {
            out.extend(bytes_of(&format!("{} {}", alias.name, alias.cidr)));
            comment(&mut out, written_comment(alias.comment.as_deref()));
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    for (name, set) in &conf.ipsets {
        let entries = set
            .entries
            .iter()
            .map(|e| (e.cidr_str(), e.comment.as_deref(), e.nomatch));
        ipset_section(&mut out, name, set.comment.as_deref(), entries);
    }
    if !conf.rules.is_empty() {
        out.extend_from_slice(b"[RULES]\n\n");
        for rule in &conf.rules {
            out.extend(rule.format(true)?);
        }
        out.push(b'\n');
    }
    for (name, group) in &conf.groups {
        header(&mut out, "group", name, group.comment.as_deref());
        for rule in &group.rules {
            out.extend(rule.format(false)?);
        }
        out.push(b'\n');
    }
    Ok(out)
}

/// `[KIND name] # comment` (the comment only if truthy) and a blank line.
fn header(out: &mut Vec<u8>, kind: &str, name: &str, set_comment: Option<&str>) {
    out.extend(bytes_of(&format!("[{kind} {name}]")));
    comment(out, set_comment.filter(|c| truthy(c)));
    out.extend_from_slice(b"\n\n");
}

/// ` # comment`, UTF-8 encoded.
fn comment(out: &mut Vec<u8>, comment: Option<&str>) {
    if let Some(c) = comment {
        out.extend_from_slice(b" # ");
        out.extend_from_slice(c.as_bytes());
    }
}

/// `$format_ipsets` for one ipset: entries de-duplicated by cidr (the
/// first wins, "ignoring duplicate ipset entry") and sorted by cidr string,
/// each `[!]cidr[ # comment]`.
fn ipset_section<'a>(
    out: &mut Vec<u8>,
    name: &str,
    set_comment: Option<&str>,
    entries: impl IntoIterator<Item = (&'a str, Option<&'a str>, bool)>,
) {
    header(out, "IPSET", name, set_comment);
    let mut by_cidr: BTreeMap<&str, (Option<&str>, bool)> = BTreeMap::new();
    for (cidr, comment, nomatch) in entries {
        by_cidr.entry(cidr).or_insert((comment, nomatch));
    }
    for (cidr, (entry_comment, nomatch)) in by_cidr {
        if nomatch {
            out.push(b'!');
        }
        out.extend(bytes_of(cidr));
        comment(out, written_comment(entry_comment));
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// The bytes `[IPSET name]` takes in `cluster.fw` when it holds these
/// entries (cidr, comment, nomatch) and no ipset comment, exactly as PVE
/// writes it: header, blank line, one line per distinct cidr, blank line.
/// With [`MAX_FILE_SIZE`], what a client needs to judge how full the file is.
pub fn ipset_section_bytes<'a>(
    name: &str,
    entries: impl IntoIterator<Item = (&'a str, Option<&'a str>, bool)>,
) -> u64 {
    let mut out = Vec::new();
    ipset_section(&mut out, name, None, entries);
    out.len() as u64
}

#[cfg(test)]
mod tests {
    use super::super::{Entry, IpSet};
    use super::*;

    #[test]
    fn ipsets_are_sorted_deduplicated_and_laid_out_as_pve_writes_them() {
        let mut conf = Conf::default();
        let entries = vec![
            Entry::new(
                "192.0.2.1",
                Some("[2024/01/02 03:04:05] Added by fail2pvefw"),
                false,
            ),
            Entry::new("10.1.0.0/16", None, true),
            Entry::new("10.0.0.0/8", Some("0"), false),
            Entry::new("10.0.0.0/8", Some("second"), false),
            Entry::new("2001:db8::1", Some("  "), false),
        ];
        let comment = Some("bans".into());
        conf.ipsets
            .insert("fail2ban".into(), IpSet { comment, entries });
        conf.ipsets.insert("empty".into(), IpSet::default());
        assert_eq!(
            String::from_utf8(conf.write().unwrap()).unwrap(),
            "[IPSET empty]\n\n\n[IPSET fail2ban] # bans\n\n10.0.0.0/8\n!10.1.0.0/16\n\
             192.0.2.1 # [2024/01/02 03:04:05] Added by fail2pvefw\n2001:db8::1\n\n"
        );
    }

    #[test]
    fn section_size_is_what_pve_writes() {
        // "[IPSET f2b]\n\n" + "1.2.3.4 # x\n" + "!10.0.0.0/8\n" + "\n"
        let entries = [
            ("1.2.3.4", Some("x"), false),
            ("10.0.0.0/8", None, true),
            ("1.2.3.4", Some("a duplicate is not written"), false),
            ("2.2.2.2", Some(" "), false),
        ];
        assert_eq!(ipset_section_bytes("f2b", entries), 13 + 12 + 12 + 8 + 1);
        let comment = "\u{e9}t\u{e9}";
        assert_eq!(
            ipset_section_bytes("f2b", [("1.2.3.4", Some(comment), false)]),
            13 + 8 + 3 + 5 + 1,
            "comments count in UTF-8 bytes"
        );
    }

    #[test]
    fn an_empty_conf_writes_nothing() {
        assert_eq!(Conf::default().write(), Ok(Vec::new()));
    }
}
