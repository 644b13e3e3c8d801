//! The cluster-wide checks, through the first node that passed: the
//! token's privileges, the IPSet, a rule that drops it, the firewall on.

use super::checklist::Doctor;
use crate::error::Failure;
use crate::transport::client::{Client, HttpResponse, Outcome};
use serde_json::Value;

fn grant_fix(token_id: &str) -> String {
    format!(
        "grant a role with both to the token (and, with privilege separation, to its user):\n  \
         pveum role add Fail2Ban --privs \"Sys.Audit Sys.Modify\"\n  \
         pveum acl modify / --tokens '{token_id}' --roles Fail2Ban"
    )
}

/// `GET /access/permissions?path=/`: what the token holds on `/` (§10).
pub(super) fn privileges(doc: &mut Doctor, client: &Client, token_id: &str) {
    let name = "privileges";
    let params = [("path".to_string(), "/".to_string())];
    let data = match get(client, "/access/permissions", &params) {
        Ok(data) => data,
        Err(got) => return doc.fail_with(name, &got.failure()),
    };
    let held = |p: &str| data["/"].get(p).is_some_and(|v| !v.is_null() && v != 0);
    let missing: Vec<&str> = ["Sys.Audit", "Sys.Modify"]
        .into_iter()
        .filter(|p| !held(p))
        .collect();
    if missing.is_empty() {
        doc.pass(
            name,
            &format!("token '{token_id}' holds Sys.Audit and Sys.Modify on '/'"),
        );
    } else {
        let why = format!(
            "token '{token_id}' lacks {} on '/' ({})",
            missing.join(" and "),
            if missing.contains(&"Sys.Modify") {
                "bans cannot be added or removed"
            } else {
                "the IPSet cannot be read"
            }
        );
        doc.fail(name, &why, Some(&grant_fix(token_id)));
    }
}

pub(super) fn ipset_exists(doc: &mut Doctor, client: &Client, ipset: &str) {
    let name = "IPSet exists";
    match get(client, &format!("/cluster/firewall/ipset/{ipset}"), &[]) {
        Ok(data) => {
            let n = data.as_array().map_or(0, Vec::len);
            doc.pass(name, &format!("'{ipset}' at datacenter level, {n} entries"));
        }
        Err(Got::Refused(r)) if r.reason.contains("no such IPSet") => {
            let fix = format!(
                "create it under Datacenter → Firewall → IPSet in the PVE GUI, or on a node:\n  \
                 pvesh create /cluster/firewall/ipset --name {ipset} --comment fail2ban\n\
                 or let fail2pvefw do it: fail2pvefw init --create-ipset …"
            );
            doc.fail(
                name,
                &format!("PVE has no datacenter IPSet '{ipset}'"),
                Some(&fix),
            );
        }
        Err(got) => doc.fail_with(name, &got.failure()),
    }
}

/// Whether a rule's source or dest names the datacenter set (`+dc/x`, `+x`).
fn references(rule: &Value, ipset: &str) -> bool {
    ["source", "dest"].iter().any(|key| {
        rule[key].as_str().is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v == format!("+dc/{ipset}") || v == format!("+{ipset}")
        })
    })
}

fn describe_rule(rule: &Value) -> String {
    let s = |k: &str| rule[k].as_str().unwrap_or("").to_string();
    let mut text = format!(
        "position {}: {} {}",
        rule["pos"],
        s("type").to_uppercase(),
        s("action")
    );
    for key in ["source", "dest"] {
        if !s(key).is_empty() {
            text.push_str(&format!(" -{key} {}", s(key)));
        }
    }
    text
}

/// `GET /cluster/firewall/rules`: an enabled DROP or REJECT rule on the set,
/// or the set is `blacklist`, which the iptables firewall drops by itself (§11).
pub(super) fn rule(doc: &mut Doctor, client: &Client, ipset: &str) {
    let name = "rule drops the IPSet";
    if ipset == "blacklist" {
        let detail = "'blacklist' is dropped by PVE's iptables firewall without a rule (the nftables backend needs one)";
        return doc.pass(name, detail);
    }
    let rules = match get(client, "/cluster/firewall/rules", &[]) {
        Ok(Value::Array(rules)) => rules,
        Ok(_) => Vec::new(),
        Err(got) => return doc.fail_with(name, &got.failure()),
    };
    let refs: Vec<&Value> = rules.iter().filter(|r| references(r, ipset)).collect();
    let drops =
        |r: &&&Value| r["enable"] == 1 && matches!(r["action"].as_str(), Some("DROP" | "REJECT"));
    if let Some(found) = refs.iter().find(drops) {
        return doc.pass(name, &describe_rule(found));
    }
    let why = match refs.first() {
        Some(r) => format!(
            "the datacenter rule at {} references '{ipset}' but is disabled or does not drop",
            describe_rule(r)
        ),
        None => format!(
            "no datacenter firewall rule references '+dc/{ipset}', so its entries are not dropped"
        ),
    };
    let fix = format!(
        "add a rule under Datacenter → Firewall: direction in, action DROP, source +dc/{ipset}, enabled; or on a node:\n  \
         pvesh create /cluster/firewall/rules --type in --action DROP --source +dc/{ipset} --enable 1"
    );
    doc.fail(name, &why, Some(&fix));
}

/// `GET /cluster/firewall/options`: `enable` unset means off (the default).
pub(super) fn firewall_enabled(doc: &mut Doctor, client: &Client) {
    let name = "datacenter firewall enabled";
    match get(client, "/cluster/firewall/options", &[]) {
        Ok(data) if data["enable"] == 1 => doc.pass(name, "[OPTIONS] enable: 1"),
        Ok(_) => {
            let fix = "Datacenter → Firewall → Options → Firewall: Yes in the PVE GUI, or on a node:\n  pvesh set /cluster/firewall/options --enable 1";
            doc.fail(
                name,
                "the datacenter firewall is off, so no rule or IPSet has any effect",
                Some(fix),
            );
        }
        Err(got) => doc.fail_with(name, &got.failure()),
    }
}

/// Why a GET gave no data.
pub(super) enum Got {
    Refused(HttpResponse),
    Failed(Failure),
}

impl Got {
    pub(super) fn failure(self) -> Failure {
        match self {
            Got::Failed(failure) => failure,
            Got::Refused(r) if r.status == 403 => {
                Failure::pve(format!("PVE refused: 403 {}", r.reason))
                    .hint("The token lacks a privilege; see the privileges check.")
            }
            Got::Refused(r) => Failure::pve(format!("PVE refused: {} {}", r.status, r.reason)),
        }
    }
}

/// A GET and its `data`, or why not.
pub(super) fn get(
    client: &Client,
    path: &str,
    params: &[(String, String)],
) -> std::result::Result<Value, Got> {
    match client.request("GET", path, params) {
        Outcome::Response(r) if r.status == 200 => {
            let body: Value = serde_json::from_str(&r.body).map_err(|e| {
                Got::Failed(Failure::pve(format!(
                    "GET {path}: PVE answered with bad JSON: {e}"
                )))
            })?;
            Ok(body["data"].clone())
        }
        Outcome::Response(r) => Err(Got::Refused(r)),
        Outcome::Failed(failure) => Err(Got::Failed(failure)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rule_references_dc_and_bare_names_only() {
        let rule =
            |source: &str| json!({ "source": source, "type": "in", "action": "DROP", "enable": 1 });
        assert!(references(&rule("+dc/fail2ban"), "fail2ban"));
        assert!(references(&rule("+FAIL2BAN"), "fail2ban"));
        assert!(!references(&rule("+dc/fail2ban2"), "fail2ban"));
        assert!(!references(&rule("+guest/fail2ban"), "fail2ban"));
        assert!(references(&json!({ "dest": "+dc/f2b" }), "f2b"));
    }
}
