//! pve-firewall's `generic_fw_config_parser`, for the cluster file, byte
//! for byte: its line trimming (`\h`, which takes the 0xA0 of a UTF-8
//! no-break space), its exact section headers, its ipset entries with their
//! `errors`, and the way a failed match leaves Perl's `$1` behind.

use super::{Alias, Conf, Entry, Group, Rule, options};
use crate::cidr::{self, Kind};
use crate::text::{
    chars_of, decode, is_hspace, is_space, split_hash, split_token, trim_by, truthy,
};
use std::collections::BTreeSet;

const MAX_IPSET_NAME: usize = 64;
const MAX_GROUP_NAME: usize = 18;

/// The section the parser is in; `None` after a bad header, too.
enum Section {
    None,
    Options,
    Aliases,
    Rules,
    Group(String),
    IpSet(String),
}

pub(super) fn parse(raw: &[u8], now: u64) -> Conf {
    let mut conf = Conf::default();
    // `return {} if !$raw`: a missing, empty or "0" file is no config.
    if raw.is_empty() || raw == b"0" {
        return conf;
    }
    let mut section = Section::None;
    // Cidrs seen in the current ipset section, for duplicates.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for line in lines(raw) {
        if line.starts_with(b"#") || line.iter().all(|b| is_space(*b)) {
            continue;
        }
        if line.eq_ignore_ascii_case(b"[options]") {
            section = Section::Options;
            continue;
        }
        if line.eq_ignore_ascii_case(b"[aliases]") {
            section = Section::Aliases;
            continue;
        }
        if let Some((name, comment)) = header(line, b"group") {
            section = match named(name, MAX_GROUP_NAME) {
                Some(name) => {
                    let group = conf.groups.entry(name.clone()).or_default();
                    group.rules.clear();
                    set_comment(&mut group.comment, comment);
                    Section::Group(name)
                }
                None => Section::None, // "security group name too long" / "invalid …"
            };
            continue;
        }
        if line.eq_ignore_ascii_case(b"[rules]") {
            section = Section::Rules;
            continue;
        }
        if let Some((name, comment)) = header(line, b"ipset") {
            section = match named(name, MAX_IPSET_NAME) {
                Some(name) => {
                    let set = conf.ipsets.entry(name.clone()).or_default();
                    set.entries.clear();
                    set_comment(&mut set.comment, comment);
                    seen.clear();
                    Section::IpSet(name)
                }
                None => Section::None, // "ipset name too long" / "invalid ipset name"
            };
            continue;
        }
        match &section {
            Section::None => {} // "skip line - no section"
            Section::Options => {
                if let Some((key, value)) = options::parse_line(line, now) {
                    conf.options.insert(key, value);
                }
            }
            Section::Aliases => {
                if let Some((key, alias)) = alias(line) {
                    conf.aliases.insert(key, alias);
                }
            }
            Section::Rules => conf.rules.extend(Rule::parse_bytes(line)),
            Section::Group(name) => {
                let rules = Rule::parse_bytes(line);
                let group: &mut Group = conf.groups.entry(name.clone()).or_default();
                group.rules.extend(rules);
            }
            Section::IpSet(name) => {
                let entry = ipset_entry(line, &conf, &seen);
                seen.insert(entry.cidr_str().to_string());
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

/// `while ($raw =~ /^\h*(.*?)\h*$/gm)`: the lines (no line after a final
/// newline), each stripped of tabs, spaces and 0xA0 bytes at both ends.
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = raw.strip_suffix(b"\n").unwrap_or(raw);
    body.split(|b| *b == b'\n').map(|l| trim_by(l, is_hspace))
}

/// `^\[KEYWORD\s+(\S+)\]\s*(?:#\s*(.*?)\s*)?$` (any case): the name and the
/// comment. The name is the longest run of non-blanks before a `]` that the
/// rest of the line lets match, as the greedy `\S+` finds it.
fn header<'a>(line: &'a [u8], keyword: &[u8]) -> Option<(&'a [u8], Option<&'a [u8]>)> {
    let rest = line.strip_prefix(b"[")?;
    let word = rest.get(..keyword.len())?;
    if !word.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = &rest[keyword.len()..];
    let gap = rest.iter().take_while(|b| is_space(**b)).count();
    if gap == 0 {
        return None;
    }
    let rest = &rest[gap..];
    let (run, _) = split_token(rest);
    (1..run.len())
        .rev()
        .filter(|&end| run[end] == b']')
        .find_map(|end| Some((&rest[..end], comment_tail(&rest[end + 1..])?)))
}

/// `\s*(?:#\s*(.*?)\s*)?$` after a header's `]`.
fn comment_tail(tail: &[u8]) -> Option<Option<&[u8]>> {
    let tail = &tail[tail.iter().take_while(|b| is_space(**b)).count()..];
    if tail.is_empty() {
        return Some(None);
    }
    let (_, comment) = split_hash(tail).filter(|(before, _)| before.is_empty())?;
    Some(Some(comment))
}

/// A header's name, lower-cased, if PVE accepts it.
fn named(name: &[u8], max: usize) -> Option<String> {
    let name = chars_of(&name.to_ascii_lowercase());
    (name.len() <= max && cidr::is_name(&name)).then_some(name)
}

/// A header comment is stored only when truthy, and a later header of the
/// same name without one keeps the earlier comment (`ipset_comments` and
/// `group_comments` are never reset by the parser).
fn set_comment(slot: &mut Option<String>, comment: Option<&[u8]>) {
    if let Some(c) = comment.filter(|c| truthy(&chars_of(c))) {
        *slot = Some(decode(c));
    }
}

/// `parse_alias`: `name cidr [# comment]` with exactly one blank between
/// the two. A line of another shape makes `parse_alias` return undef,
/// which PVE stores under the empty name and writes back as a line of one
/// space; a bad cidr drops the line.
fn alias(line: &[u8]) -> Option<(String, Alias)> {
    let (body, comment) = match split_hash(line) {
        Some((before, comment)) => (trim_by(before, is_space), Some(decode(comment))),
        None => (line, None),
    };
    let (name, rest) = split_token(body);
    let cidr = rest.first().filter(|b| is_space(**b)).map(|_| &rest[1..]);
    let cidr = cidr.filter(|c| !c.is_empty() && !c.iter().any(|b| is_space(*b)));
    let (Some(cidr), false) = (cidr, name.is_empty()) else {
        return Some((String::new(), Alias::default()));
    };
    let cidr = cidr::parse_ip_or_cidr(&chars_of(cidr)).ok()?;
    let name = chars_of(name);
    let alias = Alias {
        name: name.clone(),
        cidr,
        comment: comment.filter(|c| truthy(c)),
    };
    Some((name.to_ascii_lowercase(), alias))
}

/// One ipset line: `[!]cidr [# comment]`, checked against the aliases read
/// so far and the cidrs of the section so far. A line of any other shape
/// becomes an entry without cidr whose `nomatch` is Perl's leftover `$1`:
/// the comment if there is one, else the whole line — so normally set.
fn ipset_entry(line: &[u8], conf: &Conf, seen: &BTreeSet<String>) -> Entry {
    let (body, comment, leftover) = match split_hash(line) {
        Some((before, comment)) => (before, Some(decode(comment)), comment),
        None => (line, None, line),
    };
    let comment = comment.filter(|c| truthy(c));
    let (nomatch, token) = match entry_token(body) {
        Some((nomatch, token)) => (nomatch, Some(chars_of(token))),
        None => (truthy(&chars_of(leftover)), None),
    };
    let mut cidr = token;
    let given = cidr.clone().unwrap_or_default();
    let mut error = match cidr::verify(&given) {
        Ok(Kind::Alias { scope: _, name }) => {
            // At cluster level both scopes resolve against the file's own
            // aliases, read so far.
            conf.alias(&name)
                .is_none()
                .then(|| format!("no such alias '{name}'"))
        }
        _ => match cidr::parse_ip_or_cidr(&given) {
            Ok(parsed) => {
                cidr = Some(parsed);
                None
            }
            Err(e) => Some(e.to_string()),
        },
    };
    let key = cidr.as_deref().unwrap_or("");
    if error.is_none() && seen.contains(key) {
        error = Some(format!("duplicate ipset entry for '{key}'"));
    }
    if cidr::has_zero_prefix(key) {
        error = Some("a zero prefix is not allowed in ipset entries\n".into());
    }
    Entry {
        cidr,
        comment,
        nomatch,
        error,
    }
}

/// `m/^(\!)?\s*(\S+)\s*$/`: whether a `!` was taken, and the token.
fn entry_token(body: &[u8]) -> Option<(bool, &[u8])> {
    if let Some(token) = body.strip_prefix(b"!").and_then(lone_token) {
        return Some((true, token));
    }
    lone_token(body).map(|token| (false, token))
}

/// `^\s*(\S+)\s*$`.
fn lone_token(s: &[u8]) -> Option<&[u8]> {
    let s = &s[s.iter().take_while(|b| is_space(**b)).count()..];
    let (token, rest) = split_token(s);
    (!token.is_empty() && rest.iter().all(|b| is_space(*b))).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Conf {
        parse(text.as_bytes(), 0)
    }

    fn entry(
        cidr: Option<&str>,
        comment: Option<&str>,
        nomatch: bool,
        error: Option<&str>,
    ) -> Entry {
        Entry {
            cidr: cidr.map(Into::into),
            comment: comment.map(Into::into),
            nomatch,
            error: error.map(Into::into),
        }
    }

    const BAD: &str = "value does not look like a valid IP address or CIDR network";

    #[test]
    fn sections_entries_and_quirks() {
        let c = conf(
            "[IPSET MySet] # c\n\n1.2.3.4 #  a # b  \n! 10.0.0.0/8\n\n\
             [ipset other]\n# full-line comment\nbogus\n1.2.3.4\n1.2.3.4\n\
             [ALIASES]\nHost1 192.0.2.9\n[IPSET x]\n1.1.1.1\n",
        );
        let my = &c.ipsets["myset"];
        assert_eq!(my.comment.as_deref(), Some("c"));
        assert_eq!(
            my.entries[0],
            entry(Some("1.2.3.4"), Some("a # b"), false, None)
        );
        assert_eq!(my.entries[1], entry(Some("10.0.0.0/8"), None, true, None));
        let other = &c.ipsets["other"].entries;
        assert_eq!(other[0].error.as_deref(), Some("no such alias 'bogus'"));
        assert_eq!(other[1].error, None);
        assert_eq!(
            other[2].error.as_deref(),
            Some("duplicate ipset entry for '1.2.3.4'")
        );
        assert!(!c.ipsets.contains_key("x"), "a one-letter name is invalid");
        assert!(c.alias("HOST1").is_some() && c.alias("host1").is_some());
    }

    #[test]
    fn a_later_section_replaces_the_entries_but_keeps_the_comment() {
        let c = conf("[IPSET Foo] # first\n\n1.1.1.1\n\n[IPSET foo]\n\n2.2.2.2\n\n");
        assert_eq!(c.ipsets.len(), 1);
        assert_eq!(c.ipsets["foo"].entries[0].cidr.as_deref(), Some("2.2.2.2"));
        assert_eq!(c.ipsets["foo"].comment.as_deref(), Some("first"));
    }

    #[test]
    fn headers_are_exact() {
        assert_eq!(
            header(b"[IPSET a]b] # x", b"ipset"),
            Some((&b"a]b"[..], Some(&b"x"[..])))
        );
        assert_eq!(
            header(b"[ipset\tab]#", b"ipset"),
            Some((&b"ab"[..], Some(&b""[..])))
        );
        assert_eq!(header(b"[IPSET ab ]", b"ipset"), None);
        assert_eq!(header(b"[IPSET ab] x", b"ipset"), None);
        assert_eq!(header(b"[IPSETab]", b"ipset"), None);
        let c = conf("[OPTIONS] # c\nenable: 1\n[RULES ]\n");
        assert!(c.options.is_empty(), "no section was opened");
    }

    #[test]
    fn lines_are_trimmed_of_tabs_spaces_and_0xa0() {
        let raw = b"[IPSET ab]\n \t1.2.3.4\xc2\xa0\n\xa05.6.7.8 # x\xc2\xa0\n";
        let c = parse(raw, 0);
        let e = &c.ipsets["ab"].entries;
        assert_eq!(e[0].cidr.as_deref(), Some("1.2.3.4\u{c2}"));
        assert_eq!(e[0].error.as_deref(), Some(BAD));
        assert_eq!(e[1], entry(Some("5.6.7.8"), Some("x\u{fffd}"), false, None));
    }

    #[test]
    fn crlf_opens_ipsets_but_not_options() {
        // `\r` is `\s`, which an ipset header and entry may end with, but
        // `[OPTIONS]` must be the whole line.
        let c = conf("[OPTIONS]\r\nenable: 1\r\n[IPSET ab]\r\n1.2.3.4\r\n");
        assert!(c.options.is_empty());
        assert_eq!(c.ipsets["ab"].entries[0].cidr.as_deref(), Some("1.2.3.4"));
    }

    #[test]
    fn alias_lines() {
        let c = conf(
            "[ALIASES]\nA 10.0.0.1/32 # one\nb 2001:DB8::1/128\nx  1.2.3.4\nA 10.0.0.2\nc bad\n",
        );
        assert_eq!(c.aliases["a"].cidr, "10.0.0.2", "the later duplicate wins");
        assert_eq!(c.aliases["b"].cidr, "2001:DB8::1");
        assert_eq!(
            c.aliases[""],
            Alias::default(),
            "two blanks: not an alias line"
        );
        assert!(!c.aliases.contains_key("c"), "a bad cidr drops the line");
    }
}
