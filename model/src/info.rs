//! The read-only endpoints a client's `doctor` uses besides the ipsets:
//! `/version` (§9), `/access/permissions`, and the datacenter firewall's
//! rules and options as pve-firewall lists them.

use crate::context::Ctx;
use crate::digest;
use crate::ipset::ApiResult;
use crate::params::Params;
use serde_json::{Map, Value, json};

/// GET /version: any valid token, no privilege.
pub(crate) fn version(ctx: &mut Ctx, _: &Params) -> ApiResult {
    let release: Vec<&str> = ctx.version.split('.').take(2).collect();
    Ok(json!({
        "version": ctx.version,
        "release": release.join("."),
        "repoid": "e3ab0a6b5d1c94f2",
    }))
}

/// GET /access/permissions: what the token holds on `/`, as PVE lists it
/// (privilege → 1 for "propagate").
pub(crate) fn permissions(ctx: &mut Ctx, _: &Params) -> ApiResult {
    let mut privs = Map::new();
    if ctx.caller.audit {
        privs.insert("Sys.Audit".into(), json!(1));
    }
    if ctx.caller.modify {
        privs.insert("Sys.Modify".into(), json!(1));
    }
    Ok(json!({ "/": privs }))
}

/// GET /cluster/firewall/rules: every rule with its position and the
/// list's digest; `enable` and `pos` are numbers.
pub(crate) fn rules(ctx: &mut Ctx, _: &Params) -> ApiResult {
    let conf = ctx.store.load()?;
    let rules: Vec<_> = conf.rules.iter().map(|r| r.fields()).collect();
    let digest = digest::list(rules.clone());
    let list = rules.into_iter().enumerate().map(|(pos, fields)| {
        let mut m: Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| match k {
                "enable" => (k.to_string(), json!(u8::from(v == "1"))),
                _ => (k.to_string(), json!(v)),
            })
            .collect();
        m.insert("pos".into(), json!(pos));
        m.insert("digest".into(), json!(digest));
        Value::Object(m)
    });
    Ok(Value::Array(list.collect()))
}

/// GET /cluster/firewall/options: the options the file sets (an unset
/// `enable` means off), `enable` and `ebtables` as numbers, plus the digest.
pub(crate) fn options(ctx: &mut Ctx, _: &Params) -> ApiResult {
    let conf = ctx.store.load()?;
    let fields: Vec<(String, String)> = conf.options.into_iter().collect();
    let digest = digest::list([fields.clone()]);
    let mut m: Map<String, Value> = fields
        .into_iter()
        .map(|(k, v)| match (k.as_str(), v.parse::<u64>()) {
            ("enable" | "ebtables", Ok(n)) => (k, json!(n)),
            _ => (k, json!(v)),
        })
        .collect();
    m.insert("digest".into(), json!(digest));
    Ok(Value::Object(m))
}
