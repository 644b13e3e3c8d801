//! Firewall rules of `[RULES]` and `[group NAME]`: pve-firewall's
//! `parse_fw_rule` (a line it cannot parse is dropped with a warning) and
//! `$format_rules`, which writes the fields back in its own order.
//! `verify_rule` is not run (see the crate's DEVIATIONS).

use crate::text::{bytes_of, chars_of, decode, is_space, split_hash, split_token, written_comment};

/// One rule: `[|]TYPE ACTION [-i IFACE] [-source S] [-dest D] [-p PROTO]
/// [-dport P] [-sport P] [-log LEVEL] [-icmp-type T] [# comment]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// `false` for a line starting with `|`.
    pub enable: bool,
    /// `in`, `out`, `forward` or `group`, lower-cased.
    pub kind: String,
    /// `ACCEPT`, `DROP`, `REJECT`, or the security group of a `group` rule.
    pub action: String,
    /// `SSH` of `SSH(ACCEPT)`.
    pub macro_name: Option<String>,
    pub iface: Option<String>,
    pub source: Option<String>,
    pub dest: Option<String>,
    pub proto: Option<String>,
    pub dport: Option<String>,
    pub sport: Option<String>,
    pub log: Option<String>,
    pub icmp_type: Option<String>,
    pub comment: Option<String>,
}

const LOG_LEVELS: [&str; 9] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "nolog",
];

impl Rule {
    /// A rule line as `parse_fw_rule` reads it; `None` where PVE drops it.
    pub fn parse(line: &str) -> Option<Rule> {
        Rule::parse_bytes(line.as_bytes())
    }

    pub(crate) fn parse_bytes(line: &[u8]) -> Option<Rule> {
        let (line, comment) = match split_hash(line) {
            Some((before, comment)) => (before, Some(decode(comment))),
            None => (line, None),
        };
        let (enable, line) = match line.strip_prefix(b"|") {
            Some(rest) => (false, rest),
            None => (true, line),
        };
        // s/^(\S+)\s+(\S+)\s*//
        let (kind, rest) = split_token(line);
        let gap = rest.iter().take_while(|b| is_space(**b)).count();
        let (action, rest) = split_token(&rest[gap..]);
        if kind.is_empty() || gap == 0 || action.is_empty() {
            return None;
        }
        let mut rule = Rule {
            enable,
            kind: chars_of(&kind.to_ascii_lowercase()),
            action: chars_of(action),
            comment,
            ..Rule::default()
        };
        if matches!(rule.kind.as_str(), "in" | "out" | "forward") {
            rule.split_macro();
        }
        let mut rest = skip_space(rest);
        while !rest.is_empty() {
            let group = rule.kind == "group";
            let Some((slot, value, after)) = rule.option(rest, group) else {
                break;
            };
            *slot = Some(value);
            rest = after;
        }
        // "unable to parse rule parameters"
        rest.is_empty().then_some(rule)
    }

    /// `ACTION` of the form `MACRO(ACCEPT|DROP|REJECT)`.
    fn split_macro(&mut self) {
        for verdict in ["ACCEPT", "DROP", "REJECT"] {
            let suffix = format!("({verdict})");
            if let Some(name) = self.action.strip_suffix(&suffix)
                && !name.is_empty()
            {
                self.macro_name = Some(name.to_string());
                self.action = verdict.to_string();
                return;
            }
        }
    }

    /// One `-flag value` at the start of `rest`: the field it sets, the
    /// value and what follows. A group rule takes only `-i`.
    fn option<'r, 'a>(
        &'r mut self,
        rest: &'a [u8],
        group: bool,
    ) -> Option<(&'r mut Option<String>, String, &'a [u8])> {
        if let Some((v, after)) = flag_value(rest, &["-i"]) {
            return Some((&mut self.iface, v, after));
        }
        if group {
            return None;
        }
        if let Some((v, after)) = log_level(rest) {
            return Some((&mut self.log, v, after));
        }
        let slots: [(&[&str], &mut Option<String>); 6] = [
            (&["-p", "-proto", "--proto"], &mut self.proto),
            (&["-dport", "--dport"], &mut self.dport),
            (&["-sport", "--sport"], &mut self.sport),
            (&["-source", "--source"], &mut self.source),
            (&["-dest", "--dest"], &mut self.dest),
            (&["-icmp-type", "--icmp-type"], &mut self.icmp_type),
        ];
        for (flags, slot) in slots {
            if let Some((v, after)) = flag_value(rest, flags) {
                return Some((slot, v, after));
            }
        }
        None
    }

    /// One line of `$format_rules`; `allow_iface` is off inside security
    /// groups, whose `-i` is therefore lost on write. `Err`: PVE's `die`.
    pub(crate) fn format(&self, allow_iface: bool) -> Result<Vec<u8>, String> {
        if !matches!(self.kind.as_str(), "in" | "out" | "forward" | "group") {
            return Err(format!("unknown rule type '{}'", self.kind));
        }
        let mut out = String::new();
        if !self.enable {
            out.push('|');
        }
        out += &self.kind.to_ascii_uppercase();
        match &self.macro_name {
            Some(m) => out += &format!(" {m}({})", self.action),
            None => out += &format!(" {}", self.action),
        }
        fn set(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|v| crate::text::truthy(v))
        }
        if allow_iface && let Some(i) = set(&self.iface) {
            out += &format!(" -i {i}");
        }
        if self.kind != "group" {
            for (flag, value) in [
                ("-source", &self.source),
                ("-dest", &self.dest),
                ("-p", &self.proto),
                ("-dport", &self.dport),
                ("-sport", &self.sport),
                ("-log", &self.log),
            ] {
                if let Some(v) = set(value) {
                    out += &format!(" {flag} {v}");
                }
            }
            if let Some(t) = self.icmp_type.as_deref().filter(|t| !t.is_empty()) {
                out += &format!(" -icmp-type {t}");
            }
        }
        let mut bytes = bytes_of(&out);
        if let Some(c) = written_comment(self.comment.as_deref()) {
            bytes.extend_from_slice(b" # ");
            bytes.extend_from_slice(c.as_bytes());
        }
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// The rule's defined fields, as `GET /cluster/firewall/rules` lists
    /// them (without `pos` and `digest`).
    pub(crate) fn fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("enable", u8::from(self.enable).to_string()),
            ("type", self.kind.clone()),
            ("action", self.action.clone()),
        ];
        for (key, value) in [
            ("macro", &self.macro_name),
            ("iface", &self.iface),
            ("source", &self.source),
            ("dest", &self.dest),
            ("proto", &self.proto),
            ("dport", &self.dport),
            ("sport", &self.sport),
            ("log", &self.log),
            ("icmp-type", &self.icmp_type),
            ("comment", &self.comment),
        ] {
            if let Some(v) = value {
                f.push((key, v.clone()));
            }
        }
        f
    }
}

fn skip_space(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| is_space(**b)).count();
    &s[n..]
}

/// `^(?:FLAG) (\S+)\s*`: exactly one space between flag and value.
fn flag_value<'a>(rest: &'a [u8], flags: &[&str]) -> Option<(String, &'a [u8])> {
    flags.iter().find_map(|flag| {
        let after = rest.strip_prefix(flag.as_bytes())?.strip_prefix(b" ")?;
        let (value, after) = split_token(after);
        (!value.is_empty()).then(|| (chars_of(value), skip_space(after)))
    })
}

/// `^--?log (emerg|alert|…|nolog)\s*`: the first level that the text
/// starts with, whatever follows it.
fn log_level(rest: &[u8]) -> Option<(String, &[u8])> {
    let after = ["-log ", "--log "]
        .iter()
        .find_map(|f| rest.strip_prefix(f.as_bytes()))?;
    let level = LOG_LEVELS
        .iter()
        .find(|l| after.starts_with(l.as_bytes()))?;
    Some((level.to_string(), skip_space(&after[level.len()..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(line: &str, allow_iface: bool) -> Option<String> {
        let rule = Rule::parse(line)?;
        Some(String::from_utf8(rule.format(allow_iface).unwrap()).unwrap())
    }

    #[test]
    fn rules_are_written_back_in_pves_field_order() {
        assert_eq!(
            round("in  DROP -log nolog --source +dc/fail2ban # f2b ", true).as_deref(),
            Some("IN DROP -source +dc/fail2ban -log nolog # f2b\n")
        );
        assert_eq!(
            round("|IN SSH(ACCEPT) -i vmbr0 -dport 22 -p tcp", true).as_deref(),
            Some("|IN SSH(ACCEPT) -i vmbr0 -p tcp -dport 22\n")
        );
        assert_eq!(
            round("GROUP webservers -i net0", true).as_deref(),
            Some("GROUP webservers -i net0\n")
        );
    }

    #[test]
    fn iface_of_a_security_group_rule_is_lost_on_write() {
        assert_eq!(
            round("IN ACCEPT -i net0 -p tcp", false).as_deref(),
            Some("IN ACCEPT -p tcp\n")
        );
    }

    #[test]
    fn lines_parse_fw_rule_rejects_are_dropped() {
        for line in [
            "IN",
            "| IN ACCEPT",
            "IN ACCEPT -source  10.0.0.1",
            "IN ACCEPT -bogus x",
            "GROUP g -p tcp",
            "IN ACCEPT -log loud",
        ] {
            assert_eq!(Rule::parse(line), None, "{line}");
        }
    }

    #[test]
    fn a_falsy_value_is_not_written() {
        assert_eq!(
            round("IN ACCEPT -p tcp -dport 0 #", true).as_deref(),
            Some("IN ACCEPT -p tcp\n")
        );
    }

    #[test]
    fn a_rule_of_unknown_type_cannot_be_written() {
        let rule = Rule::parse("FOO ACCEPT").unwrap();
        assert_eq!(rule.format(true), Err("unknown rule type 'foo'".into()));
    }
}
