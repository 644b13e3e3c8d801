//! `GET /cluster/firewall/rules` and `GET /cluster/firewall/options`: read
//! from the `[RULES]` and `[OPTIONS]` lines of `cluster.fw`, as pve-firewall's
//! `parse_fw_rule` and `parse_clusterfw_option` read them. Enough for a
//! client to see which rules reference an IPSet and whether the datacenter
//! firewall is on; writes to them are not emulated.

use crate::firewall;
use crate::ipset::ApiResult;
use crate::server::Shared;
use serde_json::{Map, Value, json};

/// One rule line: `[|]TYPE ACTION [-i IFACE] [-p PROTO] [-dport P]
/// [-sport P] [-source S] [-dest D] [-log LEVEL] [# comment]`; a leading
/// `|` disables it, `ACTION` may be `Macro(ACTION)`.
fn parse_rule(line: &str) -> Vec<(&'static str, String)> {
    let (body, comment) = match line.split_once('#') {
        Some((body, c)) => (body.trim(), Some(c.trim().to_string())),
        None => (line.trim(), None),
    };
    let (enable, body) = match body.strip_prefix('|') {
        Some(rest) => ("0", rest.trim_start()),
        None => ("1", body),
    };
    let mut words = body.split_whitespace();
    let kind = words.next().unwrap_or_default().to_ascii_lowercase();
    let mut action = words.next().unwrap_or_default().to_string();
    let mut fields = vec![("enable", enable.to_string())];
    if let Some((mac, act)) = action
        .strip_suffix(')')
        .and_then(|a| a.split_once('('))
        .map(|(m, a)| (m.to_string(), a.to_string()))
    {
        fields.push(("macro", mac));
        action = act;
    }
    let rest: Vec<&str> = words.collect();
    for pair in rest.chunks(2) {
        let [flag, value] = pair else { break };
        let key = match flag.trim_start_matches('-') {
            "i" => "iface",
            "p" | "proto" => "proto",
            "dport" => "dport",
            "sport" => "sport",
            "source" => "source",
            "dest" => "dest",
            "log" => "log",
            _ => continue,
        };
        fields.push((key, value.to_string()));
    }
    fields.push(("type", kind));
    fields.push(("action", action));
    if let Some(c) = comment.filter(|c| !c.is_empty()) {
        fields.push(("comment", c));
    }
    fields
}

/// GET /cluster/firewall/rules: every rule with its position and the
/// list's digest; `enable` and `pos` are numbers.
pub(crate) fn list(shared: &Shared) -> ApiResult {
    let rules: Vec<_> = shared.conf().rules.iter().map(|l| parse_rule(l)).collect();
    let digest = firewall::digest(rules.clone());
    let list = rules.into_iter().enumerate().map(|(pos, fields)| {
        let mut m: Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| match k {
                "enable" => (k.to_string(), json!(v.parse::<u8>().unwrap_or(1))),
                _ => (k.to_string(), json!(v)),
            })
            .collect();
        m.insert("pos".into(), json!(pos));
        m.insert("digest".into(), json!(digest));
        Value::Object(m)
    });
    Ok(Value::Array(list.collect()))
}

/// GET /cluster/firewall/options: only the options the file sets (an unset
/// `enable` means off), numbers as numbers, plus the digest.
pub(crate) fn options(shared: &Shared) -> ApiResult {
    let mut fields = Vec::new();
    for line in &shared.conf().options {
        if let Some((key, value)) = line.split_once(':') {
            fields.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let pairs: Vec<(&str, String)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let digest = firewall::digest([pairs]);
    let mut m: Map<String, Value> = fields
        .into_iter()
        .map(|(k, v)| match v.parse::<i64>() {
            Ok(n) => (k, json!(n)),
            Err(_) => (k, json!(v)),
        })
        .collect();
    m.insert("digest".into(), json!(digest));
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::parse_rule;

    fn get(fields: &[(&str, String)], key: &str) -> Option<String> {
        fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn drop_rule_on_an_ipset_parses() {
        let f = parse_rule("IN DROP -source +dc/fail2ban -log nolog # f2b");
        assert_eq!(get(&f, "type").as_deref(), Some("in"));
        assert_eq!(get(&f, "action").as_deref(), Some("DROP"));
        assert_eq!(get(&f, "source").as_deref(), Some("+dc/fail2ban"));
        assert_eq!(get(&f, "enable").as_deref(), Some("1"));
        assert_eq!(get(&f, "comment").as_deref(), Some("f2b"));
    }

    #[test]
    fn disabled_macro_rule_parses() {
        let f = parse_rule("|IN SSH(ACCEPT) -dest +mgmt -i net0");
        assert_eq!(get(&f, "enable").as_deref(), Some("0"));
        assert_eq!(get(&f, "macro").as_deref(), Some("SSH"));
        assert_eq!(get(&f, "action").as_deref(), Some("ACCEPT"));
        assert_eq!(get(&f, "dest").as_deref(), Some("+mgmt"));
        assert_eq!(get(&f, "iface").as_deref(), Some("net0"));
    }
}
