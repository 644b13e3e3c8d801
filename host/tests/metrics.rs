//! `status --prometheus`, the metrics textfile and `--log-format json`
//! (issue 7): what monitoring and log shippers read.

mod support;

use std::collections::{BTreeMap, HashSet};
use support::{SECRET, Setup};

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// A strict reader of text exposition format 0.0.4: HELP then TYPE once per
/// family before its samples, families not interleaved, counters named
/// `_total`, label values quoted and escaped, no duplicate series.
fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let name_ok = |n: &str| {
        let mut c = n.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
    };
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = HashSet::new();
    let mut closed = HashSet::new();
    let mut current = String::new();
    let mut seen = HashSet::new();
    let mut samples = Vec::new();
    if !text.ends_with('\n') {
        return Err("the text must end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let at = |why: &str| format!("line {}: {why}: {line}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .ok_or_else(|| at("HELP without text"))?;
            if !name_ok(name) || help.is_empty() || !helped.insert(name.to_string()) {
                return Err(at("bad or repeated HELP"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| at("TYPE without type"))?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(at("unknown type"));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(at("a counter's name must end in _total"));
            }
            if types.insert(name.to_string(), kind.to_string()).is_some() || closed.contains(name) {
                return Err(at("repeated TYPE"));
            }
            if !current.is_empty() {
                closed.insert(current.clone());
            }
            current = name.to_string();
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            return Err(at("unexpected comment or blank line"));
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("no value"))?;
        let value: f64 = value.parse().map_err(|_| at("value is not a number"))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                parse_labels(
                    rest.strip_suffix('}')
                        .ok_or_else(|| at("unclosed labels"))?,
                )
                .map_err(|e| at(&e))?,
            ),
            None => (series, BTreeMap::new()),
        };
        if !name_ok(name) || name != current {
            return Err(at("sample outside its family (no TYPE before it)"));
        }
        if types[name] == "counter" && value < 0.0 {
            return Err(at("negative counter"));
        }
        if !seen.insert(series.to_string()) {
            return Err(at("duplicate series"));
        }
        samples.push((name.to_string(), labels, value));
    }
    Ok(samples)
}

fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").ok_or("label without =\"")?;
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad label name '{key}'"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err("bad escape".into()),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        if labels.insert(key.to_string(), value).is_some() {
            return Err(format!("repeated label '{key}'"));
        }
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(labels)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?} in {samples:?}"))
        .2
}

#[test]
fn strict_parser_refuses_what_prometheus_refuses() {
    assert!(parse_prometheus("# TYPE a_total counter\na_total 1\n").is_ok());
    assert!(parse_prometheus("a 1\n").is_err(), "no TYPE");
    assert!(
        parse_prometheus("# TYPE a counter\na 1\n").is_err(),
        "counter without _total"
    );
    assert!(
        parse_prometheus("# TYPE a gauge\na{x=\"1} 1\n").is_err(),
        "unterminated"
    );
    assert!(
        parse_prometheus("# TYPE a gauge\na 1\na 2\n").is_err(),
        "duplicate"
    );
}

#[test]
fn status_prometheus_parses_and_counts_applied_events() {
    let s = Setup::new();
    for args in [
        &["-f", "ban", "203.0.113.7"][..],
        &["-f", "ban", "203.0.113.8"],
        &["-f", "unban", "203.0.113.7"],
    ] {
        let r = s.run(args);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let r = s.run(&["status", "--prometheus"]);
    assert_eq!(r.code, 0, "{r:?}");
    let samples = parse_prometheus(&r.stdout).unwrap_or_else(|e| panic!("{e}\n{}", r.stdout));
    assert_eq!(value(&samples, "fail2pvefw_bans_applied_total", &[]), 2.0);
    assert_eq!(value(&samples, "fail2pvefw_unbans_applied_total", &[]), 1.0);
    assert_eq!(value(&samples, "fail2pvefw_queue_pending_events", &[]), 0.0);
    assert_eq!(
        value(
            &samples,
            "fail2pvefw_ipset_entries",
            &[("ipset", "fail2ban"), ("owner", "ours")]
        ),
        1.0
    );
    assert!(
        value(
            &samples,
            "fail2pvefw_cluster_fw_estimated_bytes",
            &[("ipset", "fail2ban")]
        ) > 0.0
    );
    assert_eq!(
        value(&samples, "fail2pvefw_failures_total", &[("kind", "config")]),
        0.0
    );
}

#[test]
fn failures_are_counted_by_kind() {
    let s = Setup::new();
    s.emu.set_privileges(support::TOKEN_ID, true, false);
    let r = s.run(&["-f", "ban", "203.0.113.7"]);
    assert_eq!(r.code, 1, "{r:?}");
    s.emu.set_privileges(support::TOKEN_ID, true, true);
    let r = s.run(&["status", "--prometheus"]);
    let samples = parse_prometheus(&r.stdout).unwrap_or_else(|e| panic!("{e}\n{}", r.stdout));
    assert!(value(&samples, "fail2pvefw_failures_total", &[("kind", "config")]) >= 1.0);
    assert_eq!(value(&samples, "fail2pvefw_queue_pending_events", &[]), 1.0);
}

#[test]
fn textfile_is_written_after_sync() {
    let s = Setup::new();
    let prom = s.dir.path().join("fail2pvefw.prom");
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!(
        "{text}\n[metrics]\ntextfile = \"{}\"\n",
        prom.display()
    ));
    let r = s.run(&["--queue-only", "ban", "203.0.113.7"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = s.run(&["sync"]);
    assert_eq!(r.code, 0, "{r:?}");
    let text = std::fs::read_to_string(&prom).unwrap();
    let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(value(&samples, "fail2pvefw_bans_applied_total", &[]), 1.0);
}

#[test]
fn json_log_lines_carry_fields_and_never_the_token() {
    let s = Setup::new();
    let r = s.run(&["-vv", "--log-format", "json", "-f", "ban", "203.0.113.7"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.all().contains(SECRET), "{r:?}");
    let lines: Vec<serde_json::Value> = r
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["message"].is_string()),
        "{lines:?}"
    );
    let applied = lines
        .iter()
        .find(|l| l["action"] == "ban")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(
        (applied["entry"].as_str(), applied["ipset"].as_str()),
        (Some("203.0.113.7"), Some("fail2ban"))
    );
}

#[test]
fn json_failure_is_one_line_with_exit_code_and_no_token() {
    let s = Setup::new();
    s.emu.set_privileges(support::TOKEN_ID, true, false);
    let r = s.run(&["-vv", "--log-format", "json", "-f", "ban", "203.0.113.7"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!r.all().contains(SECRET), "{r:?}");
    let last: serde_json::Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["exit_code"], "1");
    assert!(
        last["hint"].as_str().unwrap().contains("Sys.Modify"),
        "{last}"
    );
}

#[test]
fn text_log_at_debug_never_shows_the_token() {
    let s = Setup::new();
    let r = s.run(&["-vv", "-f", "ban", "203.0.113.7"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.all().contains(SECRET), "{r:?}");
    assert!(
        r.stderr.lines().all(|l| l.starts_with("fail2pvefw: ")),
        "{r:?}"
    );
}
