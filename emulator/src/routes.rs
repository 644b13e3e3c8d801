//! The routing table of §1 (plus `/version` of §9, `/access/permissions`,
//! and the read-only firewall rules and options) with each method's schema
//! and required privilege (§10).

use crate::Token;
use crate::ipset::{self, ApiResult};
use crate::params::{Params, Prop, Ty};
use crate::server::Shared;
use serde_json::json;

type Handler = fn(&Shared, &Params, &Token) -> ApiResult;

/// A registered method: its schema, the privilege it needs on `/`, its code.
pub(crate) struct Endpoint {
    pub schema: &'static [Prop],
    pub privilege: Option<&'static str>,
    pub handler: Handler,
}

const NAME: Prop = ("name", Ty::Name, false);
const CIDR: Prop = ("cidr", Ty::Cidr, false);
const COMMENT: Prop = ("comment", Ty::Str, true);
const DIGEST: Prop = ("digest", Ty::Digest, true);
const NOMATCH: Prop = ("nomatch", Ty::Bool, true);

const AUDIT: Option<&str> = Some("Sys.Audit");
const MODIFY: Option<&str> = Some("Sys.Modify");

/// The routing table of §1: path segments (empty ones dropped) to the
/// endpoint and the path parameters. `{cidr}` takes every remaining segment.
pub(crate) fn route(
    method: &str,
    segs: &[&str],
) -> Option<(Endpoint, Vec<(&'static str, String)>)> {
    let ep = |schema, privilege, handler| Endpoint {
        schema,
        privilege,
        handler,
    };
    // Path slots match \S+ (§1).
    if segs.iter().any(|s| s.contains(char::is_whitespace)) {
        return None;
    }
    let (e, path) = match (segs, method) {
        (["version"], "GET") => (ep(&[], None, version as Handler), vec![]),
        (["access", "permissions"], "GET") => {
            let schema: &[Prop] = &[("path", Ty::Str, true), ("userid", Ty::Str, true)];
            (ep(schema, None, permissions), vec![])
        }
        (["cluster", "firewall", "rules"], "GET") => {
            (ep(&[], AUDIT, |s, _, _| crate::rules::list(s)), vec![])
        }
        (["cluster", "firewall", "options"], "GET") => {
            (ep(&[], AUDIT, |s, _, _| crate::rules::options(s)), vec![])
        }
        (["cluster", "firewall", "ipset"], "GET") => {
            (ep(&[], AUDIT, |s, _, _| ipset::index(s)), vec![])
        }
        (["cluster", "firewall", "ipset"], "POST") => {
            let schema: &[Prop] = &[NAME, COMMENT, DIGEST, ("rename", Ty::Name, true)];
            (
                ep(schema, MODIFY, |s, p, _| ipset::create_ipset(s, p)),
                vec![],
            )
        }
        (["cluster", "firewall", "ipset", name], m) => {
            let e = match m {
                "GET" => ep(&[NAME], AUDIT, |s, p, _| ipset::get_ipset(s, p)),
                "POST" => ep(&[NAME, CIDR, COMMENT, NOMATCH], MODIFY, |s, p, _| {
                    ipset::create_ip(s, p)
                }),
                "DELETE" => ep(&[NAME, ("force", Ty::Bool, true)], MODIFY, |s, p, _| {
                    ipset::delete_ipset(s, p)
                }),
                _ => return None,
            };
            (e, vec![("name", name.to_string())])
        }
        (["cluster", "firewall", "ipset", name, cidr @ ..], m) => {
            let e = match m {
                "GET" => ep(&[NAME, CIDR], AUDIT, |s, p, _| ipset::read_ip(s, p)),
                "PUT" => ep(
                    &[NAME, CIDR, COMMENT, NOMATCH, DIGEST],
                    MODIFY,
                    |s, p, _| ipset::update_ip(s, p),
                ),
                "DELETE" => ep(&[NAME, CIDR, DIGEST], MODIFY, |s, p, _| {
                    ipset::remove_ip(s, p)
                }),
                _ => return None,
            };
            (
                e,
                vec![("name", name.to_string()), ("cidr", cidr.join("/"))],
            )
        }
        _ => return None,
    };
    Some((e, path))
}

/// GET /version (§9): any valid token, no privilege.
fn version(shared: &Shared, _: &Params, _: &Token) -> ApiResult {
    let release: Vec<&str> = shared.version.split('.').take(2).collect();
    Ok(
        json!({ "version": shared.version, "release": release.join("."), "repoid": "e3ab0a6b5d1c94f2" }),
    )
}

/// GET /access/permissions: what the token holds on `/`, as PVE lists it
/// (privilege → 1 for "propagate").
fn permissions(_: &Shared, _: &Params, token: &Token) -> ApiResult {
    let mut privs = serde_json::Map::new();
    if token.audit {
        privs.insert("Sys.Audit".into(), json!(1));
    }
    if token.modify {
        privs.insert("Sys.Modify".into(), json!(1));
    }
    Ok(json!({ "/": privs }))
}
