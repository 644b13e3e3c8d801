//! The eight ipset handlers (§2), in PVE's order of checks. Reads parse the
//! file; writes load, change and save it whole (`Store::write`).

use crate::cidr::{self, Kind};
use crate::clusterfw::{Conf, Entry, IpSet};
use crate::context::Ctx;
use crate::digest::{self, Fields};
use crate::error::ApiError;
use crate::params::{Params, flag, get, req};
use crate::text::truthy;
use serde_json::{Map, Value, json};

pub(crate) type ApiResult = Result<Value, ApiError>;

/// `load_config` of ClusterIPset: the ipset must exist, by its exact name.
fn ipset<'a>(conf: &'a mut Conf, name: &str) -> Result<&'a mut IpSet, ApiError> {
    conf.ipsets
        .get_mut(name)
        .ok_or_else(|| ApiError::die(format!("no such IPSet '{name}'")))
}

/// `assert_if_modified`: only when both digests are non-empty.
fn check_digest(current: &str, given: Option<&str>) -> Result<(), ApiError> {
    match given {
        Some(g) if !g.is_empty() && g != current => Err(ApiError::die(
            "detected modified configuration - file changed by other user? Try again.",
        )),
        _ => Ok(()),
    }
}

fn list_fields(conf: &Conf) -> Vec<Fields> {
    conf.ipsets
        .iter()
        .map(|(name, set)| {
            let mut f = vec![("name", name.clone())];
            if let Some(c) = set.comment.as_ref().filter(|c| truthy(c)) {
                f.push(("comment", c.clone()));
            }
            f
        })
        .collect()
}

/// The digest fields of an entry: cidr if defined, comment if any,
/// nomatch as 1 if set; `errors` is a reference and left out.
fn entry_fields(e: &Entry) -> Fields {
    let mut f = Vec::new();
    if let Some(c) = &e.cidr {
        f.push(("cidr", c.clone()));
    }
    if let Some(c) = &e.comment {
        f.push(("comment", c.clone()));
    }
    if e.nomatch {
        f.push(("nomatch", "1".into()));
    }
    f
}

fn entries_digest(set: &IpSet) -> String {
    digest::list(set.entries.iter().map(entry_fields))
}

fn entry_json(e: &Entry, digest: &str) -> Value {
    let mut m = Map::new();
    for (k, v) in entry_fields(e) {
        // nomatch is the number 1, never true (§7.3).
        let v = if k == "nomatch" { json!(1) } else { json!(v) };
        m.insert(k.into(), v);
    }
    m.insert("digest".into(), json!(digest));
    if let Some(err) = &e.error {
        m.insert("errors".into(), json!({ "cidr": err }));
    }
    Value::Object(m)
}

/// GET /cluster/firewall/ipset
pub(crate) fn index(ctx: &mut Ctx, _: &Params) -> ApiResult {
    let fields = list_fields(&ctx.store.load()?);
    let digest = digest::list(fields.clone());
    let list = fields.into_iter().map(|f| {
        let mut m: Map<String, Value> = f
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        m.insert("digest".into(), json!(digest));
        Value::Object(m)
    });
    Ok(Value::Array(list.collect()))
}

/// GET /cluster/firewall/ipset/{name}: entries in file order.
pub(crate) fn get_ipset(ctx: &mut Ctx, p: &Params) -> ApiResult {
    let mut conf = ctx.store.load()?;
    let set = ipset(&mut conf, req(p, "name"))?;
    let digest = entries_digest(set);
    Ok(Value::Array(
        set.entries.iter().map(|e| entry_json(e, &digest)).collect(),
    ))
}

/// GET /cluster/firewall/ipset/{name}/{cidr}: exact string match.
pub(crate) fn read_ip(ctx: &mut Ctx, p: &Params) -> ApiResult {
    let mut conf = ctx.store.load()?;
    let set = ipset(&mut conf, req(p, "name"))?;
    let digest = entries_digest(set);
    let cidr = req(p, "cidr");
    match set.entries.iter().find(|e| e.cidr_str() == cidr) {
        Some(e) => Ok(entry_json(e, &digest)),
        None => Err(ApiError::param("cidr", "no such IP/Network")),
    }
}

/// POST /cluster/firewall/ipset: create, or rename when `rename` is given.
pub(crate) fn create_ipset(ctx: &mut Ctx, p: &Params) -> ApiResult {
    let name = req(p, "name").to_string();
    let comment = get(p, "comment").map(str::to_string);
    let rename = get(p, "rename").filter(|r| truthy(r)).map(str::to_string);
    let digest = get(p, "digest");
    ctx.store.write(|conf| {
        let Some(old) = rename else {
            // Exact comparison: "Foo" next to "foo" is not a duplicate (§2.1).
            if conf.ipsets.contains_key(&name) {
                let text = format!("IPSet '{name}' already exists");
                return Err(ApiError::param("name", &text));
            }
            conf.ipsets.insert(
                name,
                IpSet {
                    comment,
                    entries: Vec::new(),
                },
            );
            return Ok(());
        };
        check_digest(&digest::list(list_fields(conf)), digest)?;
        if !conf.ipsets.contains_key(&old) {
            return Err(ApiError::param(
                "name",
                &format!("IPSet '{old}' does not exist"),
            ));
        }
        if conf.ipsets.contains_key(&name) && name != old {
            let text = format!("IPSet '{name}' does already exist");
            return Err(ApiError::param("name", &text));
        }
        let mut set = conf.ipsets.remove(&old).unwrap_or_default();
        if comment.is_some() {
            set.comment = comment;
        }
        conf.ipsets.insert(name, set);
        Ok(())
    })
}

/// DELETE /cluster/firewall/ipset/{name}
pub(crate) fn delete_ipset(ctx: &mut Ctx, p: &Params) -> ApiResult {
    let name = req(p, "name");
    let force = flag(p, "force");
    ctx.store.write(|conf| {
        if !ipset(conf, name)?.entries.is_empty() && !force {
            return Err(ApiError::die(format!("IPSet '{name}' is not empty")));
        }
        conf.ipsets.remove(name);
        Ok(())
    })
}

/// POST /cluster/firewall/ipset/{name}: the only place cidrs are normalised.
pub(crate) fn create_ip(ctx: &mut Ctx, p: &Params) -> ApiResult {
    let name = req(p, "name");
    let given = req(p, "cidr");
    ctx.store.write(|conf| {
        ipset(conf, name)?; // existence comes first (load_config)
        let cidr = match cidr::verify(given) {
            Ok(Kind::Alias { scope, name: alias }) => {
                // `guest/` aliases never resolve at datacenter level.
                if scope.as_deref() == Some("guest") || conf.alias(&alias).is_none() {
                    return Err(ApiError::die(format!("no such alias '{alias}'")));
                }
                given.to_string()
            }
            _ => cidr::normalise(given).unwrap_or_else(|| given.to_string()),
        };
        let set = ipset(conf, name)?;
        if set.entries.iter().any(|e| e.cidr_str() == cidr) {
            let text = format!("address '{cidr}' already exists");
            return Err(ApiError::param("cidr", &text));
        }
        if cidr::has_zero_prefix(&cidr) {
            let text = "a zero prefix is not allowed in ipset entries";
            return Err(ApiError::param("cidr", text));
        }
        let comment = get(p, "comment").filter(|c| truthy(c));
        set.entries
            .insert(0, Entry::new(&cidr, comment, flag(p, "nomatch")));
        Ok(())
    })
}

/// PUT /cluster/firewall/ipset/{name}/{cidr}: sets nomatch and comment,
/// clearing whichever the request leaves out.
pub(crate) fn update_ip(ctx: &mut Ctx, p: &Params) -> ApiResult {
    let (name, cidr) = (req(p, "name"), req(p, "cidr"));
    ctx.store.write(|conf| {
        let set = ipset(conf, name)?;
        check_digest(&entries_digest(set), get(p, "digest"))?;
        let Some(e) = set.entries.iter_mut().find(|e| e.cidr_str() == cidr) else {
            return Err(ApiError::param("cidr", "no such IP/Network"));
        };
        e.nomatch = flag(p, "nomatch");
        e.comment = get(p, "comment").map(str::to_string);
        Ok(())
    })
}

/// DELETE /cluster/firewall/ipset/{name}/{cidr}: exact match; a missing
/// entry is not an error, and the file is rewritten all the same.
pub(crate) fn remove_ip(ctx: &mut Ctx, p: &Params) -> ApiResult {
    let (name, cidr) = (req(p, "name"), req(p, "cidr"));
    ctx.store.write(|conf| {
        let set = ipset(conf, name)?;
        check_digest(&entries_digest(set), get(p, "digest"))?;
        set.entries.retain(|e| e.cidr_str() != cidr);
        Ok(())
    })
}
