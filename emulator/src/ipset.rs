//! The eight ipset handlers (§2), in PVE's order of checks. Reads parse the
//! file without the lock; writes take the lock, parse, change, serialise and
//! store the whole file, refusing a result over the size cap (§8.3).

use crate::Fault;
use crate::api::ApiError;
use crate::cidr::{self, Kind};
use crate::firewall::{self, Conf, FileEntry, IpSet};
use crate::params::{PVal, Params};
use crate::server::Shared;
use serde_json::{Map, Value, json};

pub(crate) type ApiResult = Result<Value, ApiError>;

/// A string parameter, if given (the schema has made sure of the type).
fn get<'a>(p: &'a Params, key: &str) -> Option<&'a str> {
    match p.get(key) {
        Some(PVal::Str(s)) => Some(s),
        _ => None,
    }
}

fn req<'a>(p: &'a Params, key: &str) -> &'a str {
    get(p, key).unwrap_or_default()
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some(s) if !s.is_empty() && s != "0")
}

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
            "detected modified configuration - file changed by other user? Try again.".into(),
        )),
        _ => Ok(()),
    }
}

fn list_fields(conf: &Conf) -> Vec<Vec<(&'static str, String)>> {
    conf.ipsets
        .iter()
        .map(|(name, set)| {
            let mut f = vec![("name", name.clone())];
            if let Some(c) = set.comment.as_ref().filter(|c| truthy(Some(c))) {
                f.push(("comment", c.clone()));
            }
            f
        })
        .collect()
}

fn entries_digest(set: &IpSet) -> String {
    firewall::digest(set.entries.iter().map(firewall::entry_fields))
}

fn entry_json(e: &FileEntry, digest: &str) -> Value {
    let mut m = Map::new();
    for (k, v) in firewall::entry_fields(e) {
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
pub(crate) fn index(shared: &Shared) -> ApiResult {
    let fields = list_fields(&shared.conf());
    let digest = firewall::digest(fields.clone());
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

/// GET /cluster/firewall/ipset/{name}
pub(crate) fn get_ipset(shared: &Shared, p: &Params) -> ApiResult {
    let mut conf = shared.conf();
    let set = ipset(&mut conf, req(p, "name"))?;
    let digest = entries_digest(set);
    Ok(Value::Array(
        set.entries.iter().map(|e| entry_json(e, &digest)).collect(),
    ))
}

/// GET /cluster/firewall/ipset/{name}/{cidr}: exact string match.
pub(crate) fn read_ip(shared: &Shared, p: &Params) -> ApiResult {
    let mut conf = shared.conf();
    let set = ipset(&mut conf, req(p, "name"))?;
    let digest = entries_digest(set);
    let cidr = req(p, "cidr");
    match set.entries.iter().find(|e| e.cidr == cidr) {
        Some(e) => Ok(entry_json(e, &digest)),
        None => Err(ApiError::param("cidr", "no such IP/Network")),
    }
}

/// Runs a write under the cluster lock, consuming an injected fault first,
/// and stores the result unless it exceeds the size cap.
fn write(shared: &Shared, change: impl FnOnce(&mut Conf) -> Result<(), ApiError>) -> ApiResult {
    let _lock = shared.write_lock.lock().unwrap_or_else(|e| e.into_inner());
    let fault = shared.faults.lock().unwrap().pop_front();
    match fault {
        Some(Fault::LockTimeout) => {
            return Err(ApiError::die(
                "cfs-lock 'firewall-cluster' error: got lock request timeout".into(),
            ));
        }
        Some(Fault::Status(status, message)) => {
            return Err(ApiError {
                status,
                message: with_newline(message),
                errors: None,
            });
        }
        Some(Fault::Stall(d)) => std::thread::sleep(d),
        None => {}
    }
    let mut conf = shared.conf();
    change(&mut conf)?;
    let text = conf.serialise();
    if text.len() > shared.max_file_size {
        return Err(ApiError::die(format!(
            "unable to write '/etc/pve/firewall/cluster.fw.tmp.{}' - File too large",
            std::process::id()
        )));
    }
    *shared.file.lock().unwrap() = text;
    Ok(Value::Null)
}

fn with_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// POST /cluster/firewall/ipset: create, or rename when `rename` is given.
pub(crate) fn create_ipset(shared: &Shared, p: &Params) -> ApiResult {
    let name = req(p, "name").to_string();
    let comment = get(p, "comment").map(str::to_string);
    let rename = get(p, "rename")
        .filter(|r| truthy(Some(r)))
        .map(str::to_string);
    let digest = get(p, "digest").map(str::to_string);
    write(shared, |conf| {
        let Some(old) = rename else {
            // Exact comparison: "Foo" next to "foo" is not a duplicate (§2.1).
            if conf.ipsets.contains_key(&name) {
                return Err(ApiError::param(
                    "name",
                    &format!("IPSet '{name}' already exists"),
                ));
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
        check_digest(&firewall::digest(list_fields(conf)), digest.as_deref())?;
        if !conf.ipsets.contains_key(&old) {
            return Err(ApiError::param(
                "name",
                &format!("IPSet '{old}' does not exist"),
            ));
        }
        if conf.ipsets.contains_key(&name) && name != old {
            return Err(ApiError::param(
                "name",
                &format!("IPSet '{name}' does already exist"),
            ));
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
pub(crate) fn delete_ipset(shared: &Shared, p: &Params) -> ApiResult {
    let name = req(p, "name");
    let force = truthy(get(p, "force"));
    write(shared, |conf| {
        if !ipset(conf, name)?.entries.is_empty() && !force {
            return Err(ApiError::die(format!("IPSet '{name}' is not empty")));
        }
        conf.ipsets.remove(name);
        Ok(())
    })
}

/// POST /cluster/firewall/ipset/{name}: the only place cidrs are normalised.
pub(crate) fn create_ip(shared: &Shared, p: &Params) -> ApiResult {
    let name = req(p, "name");
    let given = req(p, "cidr");
    write(shared, |conf| {
        ipset(conf, name)?; // existence comes first (load_config)
        let cidr = match cidr::verify(given) {
            Ok(Kind::Alias { scope, name: alias }) => {
                // `guest/` aliases never resolve at datacenter level.
                if scope.as_deref() == Some("guest") || !conf.has_alias(&alias) {
                    return Err(ApiError::die(format!("no such alias '{alias}'")));
                }
                given.to_string()
            }
            _ => cidr::normalise(given).unwrap_or_else(|| given.to_string()),
        };
        let set = ipset(conf, name)?;
        if set.entries.iter().any(|e| e.cidr == cidr) {
            return Err(ApiError::param(
                "cidr",
                &format!("address '{cidr}' already exists"),
            ));
        }
        if cidr::has_zero_prefix(&cidr) {
            return Err(ApiError::param(
                "cidr",
                "a zero prefix is not allowed in ipset entries",
            ));
        }
        let comment = get(p, "comment")
            .filter(|c| truthy(Some(c)))
            .map(str::to_string);
        let nomatch = truthy(get(p, "nomatch"));
        set.entries.insert(
            0,
            FileEntry {
                cidr,
                comment,
                nomatch,
                error: None,
            },
        );
        Ok(())
    })
}

/// PUT /cluster/firewall/ipset/{name}/{cidr}: sets nomatch and comment,
/// clearing whichever the request leaves out.
pub(crate) fn update_ip(shared: &Shared, p: &Params) -> ApiResult {
    let (name, cidr) = (req(p, "name"), req(p, "cidr"));
    write(shared, |conf| {
        let set = ipset(conf, name)?;
        check_digest(&entries_digest(set), get(p, "digest"))?;
        let Some(e) = set.entries.iter_mut().find(|e| e.cidr == cidr) else {
            return Err(ApiError::param("cidr", "no such IP/Network"));
        };
        e.nomatch = truthy(get(p, "nomatch"));
        e.comment = get(p, "comment").map(str::to_string);
        Ok(())
    })
}

/// DELETE /cluster/firewall/ipset/{name}/{cidr}: exact match; a missing
/// entry is not an error, and the file is rewritten all the same.
pub(crate) fn remove_ip(shared: &Shared, p: &Params) -> ApiResult {
    let (name, cidr) = (req(p, "name"), req(p, "cidr"));
    write(shared, |conf| {
        let set = ipset(conf, name)?;
        check_digest(&entries_digest(set), get(p, "digest"))?;
        set.entries.retain(|e| e.cidr != cidr);
        Ok(())
    })
}
