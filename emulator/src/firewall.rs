//! The emulated `/etc/pve/firewall/cluster.fw` (spec §7): its text is the
//! source of truth. Every request parses it afresh and every write
//! serialises it in full, as PVE does, so quirks such as names lower-cased on
//! re-read (§2.1), comments trimmed or dropped (§4) and injected newlines
//! turning into entries come out of the same mechanism rather than being
//! special-cased.

use crate::cidr;
use std::collections::BTreeMap;

/// One ipset entry as parsed from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub cidr: String,
    pub comment: Option<String>,
    pub nomatch: bool,
    /// The parser's complaint about this line, shown as `errors.cidr`.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    /// Kept even when empty: only the writer decides what is "truthy" (§2).
    pub comment: Option<String>,
    pub entries: Vec<FileEntry>,
}

/// The parsed file. Keys are the names as the parser saw them (lower-cased)
/// or as a write handler set them (as given), which is the §2.1 quirk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conf {
    /// Raw `[OPTIONS]` lines, kept so a write does not drop them.
    pub options: Vec<String>,
    /// Alias name (as written) → (cidr, comment).
    pub aliases: BTreeMap<String, (String, Option<String>)>,
    pub ipsets: BTreeMap<String, IpSet>,
    /// Raw `[RULES]` lines, kept so a write does not drop them.
    pub rules: Vec<String>,
}

/// Perl truthiness plus the "not all whitespace" test of `$format_ipsets` (§4).
fn written(comment: &Option<String>) -> Option<&str> {
    comment
        .as_deref()
        .filter(|c| !c.is_empty() && *c != "0" && !c.chars().all(char::is_whitespace))
}

/// Perl's `\s` trim, as the parser applies to lines and comments.
fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b')
}

impl Conf {
    /// `save_clusterfw_conf` (§7.1): OPTIONS, ALIASES (sorted), IPSETs sorted
    /// by name, RULES; header, blank line, body, blank line. Entries are
    /// de-duplicated by cidr (first wins) and sorted by cidr string.
    pub fn serialise(&self) -> String {
        let mut out = String::new();
        if !self.options.is_empty() {
            out += "[OPTIONS]\n\n";
            self.options.iter().for_each(|l| out += &format!("{l}\n"));
            out += "\n";
        }
        if !self.aliases.is_empty() {
            out += "[ALIASES]\n\n";
            for (name, (cidr, comment)) in &self.aliases {
                out += &format!("{name} {cidr}");
                if let Some(c) = written(comment) {
                    out += &format!(" # {c}");
                }
                out += "\n";
            }
            out += "\n";
        }
        for (name, set) in &self.ipsets {
            out += &format!("[IPSET {name}]");
            if let Some(c) = written(&set.comment) {
                out += &format!(" # {c}");
            }
            out += "\n\n";
            let mut by_cidr: BTreeMap<&str, &FileEntry> = BTreeMap::new();
            for e in &set.entries {
                by_cidr.entry(e.cidr.as_str()).or_insert(e);
            }
            for (cidr, e) in by_cidr {
                out += if e.nomatch { "!" } else { "" };
                out += cidr;
                if let Some(c) = written(&e.comment) {
                    out += &format!(" # {c}");
                }
                out += "\n";
            }
            out += "\n";
        }
        if !self.rules.is_empty() {
            out += "[RULES]\n\n";
            self.rules.iter().for_each(|l| out += &format!("{l}\n"));
            out += "\n";
        }
        out
    }

    /// `generic_fw_config_parser` for the sections the emulator knows.
    /// Section headers are case-insensitive, ipset names lower-cased, a later
    /// section with the same name replaces an earlier one, bad entries are
    /// kept with an error, unknown or invalid sections are skipped.
    pub fn parse(text: &str) -> Conf {
        let mut conf = Conf::default();
        let mut sec = Sec::None;
        for raw in text.split('\n') {
            let line = trim(raw);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('[') {
                sec = header(line, &mut conf);
                continue;
            }
            match &sec {
                Sec::None => {}
                Sec::Options => conf.options.push(line.to_string()),
                Sec::Rules => conf.rules.push(line.to_string()),
                Sec::Aliases => {
                    let (body, comment) = split_comment(line);
                    if let Some((name, cidr)) = body.split_once(char::is_whitespace) {
                        conf.aliases
                            .insert(name.to_string(), (trim(cidr).to_string(), comment));
                    }
                }
                Sec::IpSet(name) => {
                    let (body, comment) = split_comment(line);
                    let (nomatch, cidr) = match body.strip_prefix('!') {
                        Some(rest) => (true, trim(rest)),
                        None => (false, body),
                    };
                    if cidr.is_empty() || cidr.contains(char::is_whitespace) {
                        continue; // "unable to parse ipset entry": skipped with a warning
                    }
                    let set = conf.ipsets.get(name).cloned().unwrap_or_default();
                    let error = entry_error(cidr, &set, &conf);
                    let entry = FileEntry {
                        cidr: cidr.to_string(),
                        comment,
                        nomatch,
                        error,
                    };
                    conf.ipsets
                        .entry(name.clone())
                        .or_default()
                        .entries
                        .push(entry);
                }
            }
        }
        conf
    }

    /// Case-insensitive alias lookup at datacenter level (§2 step 2).
    pub fn has_alias(&self, name: &str) -> bool {
        self.aliases.keys().any(|k| k.eq_ignore_ascii_case(name))
    }
}

/// The section the parser is in.
#[derive(PartialEq)]
enum Sec {
    None,
    Options,
    Aliases,
    IpSet(String),
    Rules,
}

/// A `[...]` line: which section starts. A new `[IPSET name]` replaces an
/// earlier one of the same (lower-cased) name; a bad name skips the section.
fn header(line: &str, conf: &mut Conf) -> Sec {
    let (head, comment) = split_comment(line);
    let Some(inner) = head.strip_prefix('[').and_then(|h| h.strip_suffix(']')) else {
        return Sec::None;
    };
    let lower = inner.to_ascii_lowercase();
    match lower.as_str() {
        "options" => return Sec::Options,
        "aliases" => return Sec::Aliases,
        "rules" => return Sec::Rules,
        _ => {}
    }
    let Some(name) = lower
        .strip_prefix("ipset")
        .filter(|r| r.starts_with([' ', '\t']))
    else {
        return Sec::None;
    };
    let name = trim(name).to_string();
    if name.len() > 64 || !cidr::is_name(&name) {
        return Sec::None; // "ipset name too long" / "invalid ipset name"
    }
    conf.ipsets.insert(
        name.clone(),
        IpSet {
            comment,
            entries: Vec::new(),
        },
    );
    Sec::IpSet(name)
}

/// Everything after the first `#` is the comment, trimmed; an empty or "0"
/// comment is as good as none (§4).
fn split_comment(line: &str) -> (&str, Option<String>) {
    match line.split_once('#') {
        Some((body, c)) => {
            let c = trim(c);
            (
                trim(body),
                (!c.is_empty() && c != "0").then(|| c.to_string()),
            )
        }
        None => (line, None),
    }
}

/// The parser's per-entry checks (§7.1): address format or alias existence,
/// zero prefix, duplicate.
fn entry_error(cidr: &str, set: &IpSet, conf: &Conf) -> Option<String> {
    match cidr::verify(cidr) {
        Err(m) => return Some(m),
        Ok(cidr::Kind::Alias { scope, name }) => {
            if scope.as_deref() == Some("guest") || !conf.has_alias(&name) {
                return Some(format!("no such alias '{name}'"));
            }
        }
        Ok(cidr::Kind::Address) => {
            if cidr::has_zero_prefix(cidr) {
                return Some("a zero prefix is not allowed in ipset entries".into());
            }
        }
    }
    set.entries
        .iter()
        .any(|e| e.cidr == cidr)
        .then(|| format!("duplicate ipset entry for '{cidr}'"))
}

/// `copy_list_with_digest` (§7.3): SHA-1 over `key:value\n` for each defined,
/// non-reference field of each element, keys sorted. Each element is given as
/// its (key, value) pairs; the caller leaves out undefined ones.
pub fn digest<'a, I, E>(list: I) -> String
where
    I: IntoIterator<Item = E>,
    E: IntoIterator<Item = (&'a str, String)>,
{
    let mut sha = sha1_smol::Sha1::new();
    for element in list {
        let mut fields: Vec<(&str, String)> = element.into_iter().collect();
        fields.sort();
        for (k, v) in fields {
            sha.update(format!("{k}:{v}\n").as_bytes());
        }
    }
    sha.digest().to_string()
}

/// The digest fields of an entry: cidr, comment if any, nomatch as 1 if set.
pub fn entry_fields(e: &FileEntry) -> Vec<(&'static str, String)> {
    let mut f = vec![("cidr", e.cidr.clone())];
    if let Some(c) = &e.comment {
        f.push(("comment", c.clone()));
    }
    if e.nomatch {
        f.push(("nomatch", "1".into()));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cidr: &str, comment: Option<&str>, nomatch: bool) -> FileEntry {
        FileEntry {
            cidr: cidr.into(),
            comment: comment.map(Into::into),
            nomatch,
            error: None,
        }
    }

    #[test]
    fn digest_vectors() {
        let none: Vec<Vec<(&str, String)>> = vec![];
        assert_eq!(digest(none), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        let one = [entry("1.2.3.4", None, false)];
        assert_eq!(
            digest(one.iter().map(entry_fields)),
            "cf70dabeb1791eb8381cd3f13bd883ad2d413e5d"
        );
        let two = [
            entry(
                "10.0.0.0/8",
                Some("[2024/01/02 03:04:05] Added by fail2pvefw"),
                false,
            ),
            entry("192.0.2.1", None, true),
        ];
        assert_eq!(
            digest(two.iter().map(entry_fields)),
            "a3ffedf31b2c47a52b416eeeb1c5e968988fbb4e"
        );
        let sets = vec![
            vec![("name", "blacklist".to_string())],
            vec![
                ("name", "fail2ban".to_string()),
                ("comment", "bans".to_string()),
            ],
        ];
        assert_eq!(digest(sets), "d3a8b3a6dd863df6d85707dedd08b7c30fece826");
    }

    #[test]
    fn serialise_layout_sorted_deduplicated() {
        let mut conf = Conf::default();
        conf.ipsets.insert(
            "fail2ban".into(),
            IpSet {
                comment: Some("bans".into()),
                entries: vec![
                    entry(
                        "192.0.2.1",
                        Some("[2024/01/02 03:04:05] Added by fail2pvefw"),
                        false,
                    ),
                    entry("10.1.0.0/16", None, true),
                    entry("10.0.0.0/8", Some("0"), false),
                    entry("10.0.0.0/8", Some("second"), false),
                    entry("2001:db8::1", Some("  "), false),
                ],
            },
        );
        conf.ipsets.insert("empty".into(), IpSet::default());
        assert_eq!(
            conf.serialise(),
            "[IPSET empty]\n\n\n[IPSET fail2ban] # bans\n\n10.0.0.0/8\n!10.1.0.0/16\n\
             192.0.2.1 # [2024/01/02 03:04:05] Added by fail2pvefw\n2001:db8::1\n\n"
        );
    }

    #[test]
    fn parse_round_trip_and_quirks() {
        let text = "[IPSET MySet] # c\n\n1.2.3.4 #  a # b  \n! 10.0.0.0/8\n\n\
                    [ipset other]\n# full-line comment\nbogus\n1.2.3.4\n1.2.3.4\n\
                    [ALIASES]\nHost1 192.0.2.9\n[IPSET x]\n1.1.1.1\n";
        let conf = Conf::parse(text);
        let my = &conf.ipsets["myset"];
        assert_eq!(my.comment.as_deref(), Some("c"));
        assert_eq!(my.entries[0], entry("1.2.3.4", Some("a # b"), false));
        assert_eq!(my.entries[1], entry("10.0.0.0/8", None, true));
        let other = &conf.ipsets["other"].entries;
        assert_eq!(other[0].error.as_deref(), Some("no such alias 'bogus'"));
        assert_eq!(other[1].error, None);
        assert_eq!(
            other[2].error.as_deref(),
            Some("duplicate ipset entry for '1.2.3.4'")
        );
        assert!(
            !conf.ipsets.contains_key("x"),
            "a one-letter name is invalid"
        );
        assert!(conf.has_alias("HOST1") && conf.has_alias("host1"));
    }

    #[test]
    fn later_section_replaces_earlier() {
        let conf = Conf::parse("[IPSET Foo]\n\n1.1.1.1\n\n[IPSET foo]\n\n2.2.2.2\n\n");
        assert_eq!(conf.ipsets.len(), 1);
        assert_eq!(conf.ipsets["foo"].entries[0].cidr, "2.2.2.2");
    }

    #[test]
    fn injected_newline_becomes_entry() {
        let mut conf = Conf::default();
        let set = IpSet {
            comment: None,
            entries: vec![entry("1.2.3.4", Some("x\n5.6.7.8"), false)],
        };
        conf.ipsets.insert("f2b".into(), set);
        let again = Conf::parse(&conf.serialise());
        let cidrs: Vec<_> = again.ipsets["f2b"]
            .entries
            .iter()
            .map(|e| e.cidr.clone())
            .collect();
        assert_eq!(cidrs, ["1.2.3.4", "5.6.7.8"]);
    }
}
