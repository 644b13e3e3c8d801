//! `[OPTIONS]`: pve-firewall's `parse_clusterfw_option`, which keeps only
//! the options it knows and rewrites their values, and the check of
//! `log_ratelimit` that `load_clusterfw_conf` makes with pve-common's
//! `parse_property_string`.

use crate::error::ApiError;
use crate::text::{chars_of, is_space, trim_space};
use std::collections::BTreeMap;

/// One option line: `(key, value)` as PVE keeps it, or `None` when PVE
/// warns "can't parse option" and drops the line. Keys match without
/// regard to case (except `log_ratelimit`) and come out lower-cased.
pub(super) fn parse_line(line: &[u8], now: u64) -> Option<(String, String)> {
    let keyword = |v: &[u8], words: &[&str]| {
        words
            .iter()
            .find(|w| v.eq_ignore_ascii_case(w.as_bytes()))
            .map(|w| w.to_string())
    };
    if let Some(v) = value_of(line, "enable", true)
        && v.iter().all(u8::is_ascii_digit)
    {
        // `enable: <time>` is the GUI's "enable for a minute": once that
        // minute has passed it reads as off.
        let n = int(v);
        let expired = n > 1 && i128::from(now) - i128::from(n) > 60;
        return Some(("enable".into(), if expired { 0 } else { n }.to_string()));
    }
    if let Some(v) = value_of(line, "ebtables", true)
        && (v == b"0" || v == b"1")
    {
        return Some(("ebtables".into(), chars_of(v)));
    }
    for (key, words) in [
        ("policy_in", &["ACCEPT", "DROP", "REJECT"][..]),
        ("policy_out", &["ACCEPT", "DROP", "REJECT"]),
        ("policy_forward", &["ACCEPT", "DROP"]),
    ] {
        if let Some(word) = value_of(line, key, true).and_then(|v| keyword(v, words)) {
            return Some((key.into(), word));
        }
    }
    let rate = value_of(line, "log_ratelimit", false)?;
    Some(("log_ratelimit".into(), chars_of(rate)))
}

/// `^(KEY):\s*(VALUE)\s*$`: the value, without blanks inside.
fn value_of<'a>(line: &'a [u8], key: &str, any_case: bool) -> Option<&'a [u8]> {
    let head = line.get(..key.len())?;
    let same = if any_case {
        head.eq_ignore_ascii_case(key.as_bytes())
    } else {
        head == key.as_bytes()
    };
    let value = trim_space(line[key.len()..].strip_prefix(b":").filter(|_| same)?);
    (!value.is_empty() && !value.iter().any(|b| is_space(*b))).then_some(value)
}

/// Perl's `int` of a digit string (saturating beyond 64 bits).
fn int(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    })
}

/// `parse_property_string` of the `log_ratelimit` format: `enable`
/// (boolean, required, the default key), `rate` (`[1-9][0-9]*/(second|
/// minute|hour|day)`) and `burst` (integer, at least 0). A malformed list
/// dies with its own message; schema failures raise 500 `format error`
/// with the errors map.
pub(super) fn check_log_ratelimit(value: &str) -> Result<(), ApiError> {
    let die = |m: String| Err(ApiError::die(m));
    let dup = |k: &str| format!("duplicate key in comma-separated list property: {k}");
    let mut given: BTreeMap<&str, String> = BTreeMap::new();
    let mut default_key = false;
    for part in value.split(',') {
        if part.bytes().all(is_space) {
            continue;
        }
        match part.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => {
                if given.contains_key(k) {
                    return die(dup(k));
                }
                let Some(key) = ["enable", "rate", "burst"].into_iter().find(|n| *n == k) else {
                    return die(format!("invalid key in comma-separated list property: {k}"));
                };
                let v = match key {
                    "enable" => parse_boolean(v).unwrap_or(v),
                    _ => v,
                };
                given.insert(key, v.to_string());
            }
            None => {
                // A bare value belongs to the default key, `enable`.
                let taken = given.get("enable").is_some_and(|v| crate::text::truthy(v));
                if default_key || taken {
                    return die(dup("enable"));
                }
                default_key = true;
                given.insert("enable", part.to_string());
            }
            Some(_) => return die("missing key in comma-separated list property".into()),
        }
    }
    let mut errors = BTreeMap::new();
    let mut fail = |key: &str, text: String| errors.insert(key.to_string(), text);
    match given.get("enable").map(String::as_str) {
        None => {
            _ = fail(
                "enable",
                "property is missing and it is not optional".into(),
            )
        }
        Some("0" | "1") => {}
        Some(v) => {
            _ = fail(
                "enable",
                format!("type check ('boolean') failed - got '{v}'"),
            )
        }
    }
    if let Some(rate) = given.get("rate")
        && !is_rate(rate)
    {
        fail("rate", "value does not match the regex pattern".into());
    }
    if let Some(burst) = given.get("burst") {
        let digits = burst.trim_start_matches(['+', '-']);
        let integer = burst.len() - digits.len() <= 1
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit());
        if !integer {
            fail(
                "burst",
                format!("type check ('integer') failed - got '{burst}'"),
            );
        } else if burst.starts_with('-') && digits.bytes().any(|b| b != b'0') {
            fail("burst", "value must have a minimum value of 0".into());
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError {
        status: 500,
        message: "format error\n".into(),
        errors: Some(errors),
    })
}

/// pve-common's `parse_boolean`.
fn parse_boolean(v: &str) -> Option<&'static str> {
    let is = |words: [&str; 4]| words.iter().any(|w| v.eq_ignore_ascii_case(w));
    if is(["1", "on", "yes", "true"]) {
        Some("1")
    } else if is(["0", "off", "no", "false"]) {
        Some("0")
    } else {
        None
    }
}

/// `^[1-9][0-9]*\/(second|minute|hour|day)$`.
fn is_rate(v: &str) -> bool {
    let Some((n, unit)) = v.split_once('/') else {
        return false;
    };
    n.starts_with(|c: char| ('1'..='9').contains(&c))
        && n.bytes().all(|b| b.is_ascii_digit())
        && ["second", "minute", "hour", "day"].contains(&unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(line: &str, now: u64) -> Option<(String, String)> {
        parse_line(line.as_bytes(), now)
    }

    fn pair(k: &str, v: &str) -> Option<(String, String)> {
        Some((k.into(), v.into()))
    }

    #[test]
    fn known_options_are_rewritten() {
        assert_eq!(opt("ENABLE: 01", 0), pair("enable", "1"));
        assert_eq!(opt("policy_in: drop", 0), pair("policy_in", "DROP"));
        assert_eq!(opt("Policy_Out:REJECT ", 0), pair("policy_out", "REJECT"));
        assert_eq!(
            opt("policy_forward: accept", 0),
            pair("policy_forward", "ACCEPT")
        );
        assert_eq!(opt("ebtables: 0", 0), pair("ebtables", "0"));
        assert_eq!(
            opt("log_ratelimit: enable=1,burst=5", 0),
            pair("log_ratelimit", "enable=1,burst=5")
        );
    }

    #[test]
    fn an_enable_timestamp_older_than_a_minute_reads_as_off() {
        let t = 1_700_000_000;
        assert_eq!(opt("enable: 1700000000", t + 61), pair("enable", "0"));
        assert_eq!(
            opt("enable: 1700000000", t + 60),
            pair("enable", "1700000000")
        );
        assert_eq!(
            opt("enable: 1700000000", t - 5),
            pair("enable", "1700000000")
        );
    }

    #[test]
    fn unknown_or_malformed_options_are_dropped() {
        for line in [
            "nosuch: 1",
            "enable: yes",
            "enable 1",
            "ebtables: 2",
            "policy_forward: REJECT",
            "LOG_RATELIMIT: enable=1",
            "log_ratelimit: a b",
            "enable:",
        ] {
            assert_eq!(opt(line, 0), None, "{line}");
        }
    }

    fn errors(v: &str) -> ApiError {
        check_log_ratelimit(v).unwrap_err()
    }

    fn error_map(v: &str) -> Vec<(String, String)> {
        let e = errors(v);
        assert_eq!(
            (e.status, e.message.as_str()),
            (500, "format error\n"),
            "{v}"
        );
        e.errors.unwrap().into_iter().collect()
    }

    #[test]
    fn log_ratelimit_schema_errors_are_a_format_error() {
        let one = |k: &str, t: &str| vec![(k.to_string(), t.to_string())];
        assert_eq!(
            error_map("bogus"),
            one("enable", "type check ('boolean') failed - got 'bogus'")
        );
        assert_eq!(
            error_map("enable=1,rate=fast"),
            one("rate", "value does not match the regex pattern")
        );
        assert_eq!(
            error_map("burst=5"),
            one("enable", "property is missing and it is not optional")
        );
        assert_eq!(
            error_map("1,burst=-1"),
            one("burst", "value must have a minimum value of 0")
        );
        assert_eq!(
            error_map("1,burst=x"),
            one("burst", "type check ('integer') failed - got 'x'")
        );
    }

    #[test]
    fn malformed_log_ratelimit_lists_die_with_their_message() {
        for (v, m) in [
            (
                "enable=1,foo=2",
                "invalid key in comma-separated list property: foo\n",
            ),
            (
                "1,0",
                "duplicate key in comma-separated list property: enable\n",
            ),
            (
                "enable=1,enable=0",
                "duplicate key in comma-separated list property: enable\n",
            ),
            ("=1", "missing key in comma-separated list property\n"),
        ] {
            let e = errors(v);
            assert_eq!(
                (e.status, e.message.as_str(), e.errors),
                (500, m, None),
                "{v}"
            );
        }
    }

    #[test]
    fn valid_log_ratelimits_pass() {
        for v in [
            "1",
            "enable=0",
            "enable=yes,rate=10/minute,burst=0",
            "0,burst=+3",
            "1,,",
        ] {
            assert_eq!(check_log_ratelimit(v), Ok(()), "{v}");
        }
    }
}
