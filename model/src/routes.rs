//! The routing table of §1 (plus `/version` of §9, `/access/permissions`,
//! and the read-only firewall rules and options) with each method's schema
//! and required privilege (§10).

use crate::context::Ctx;
use crate::info;
use crate::ipset::{self, ApiResult};
use crate::params::{Params, Prop, Ty};

pub(crate) type Handler = fn(&mut Ctx, &Params) -> ApiResult;

/// A registered method: its schema, the privilege it needs on `/`, its code.
#[derive(Clone, Copy)]
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

fn ep(schema: &'static [Prop], privilege: Option<&'static str>, handler: Handler) -> Endpoint {
    Endpoint {
        schema,
        privilege,
        handler,
    }
}

/// The routing table of §1: path segments (empty ones dropped) to the
/// endpoint and the path parameters. `{cidr}` takes every remaining segment.
pub(crate) fn route(
    method: &str,
    segs: &[&str],
) -> Option<(Endpoint, Vec<(&'static str, String)>)> {
    // Path slots match \S+ (§1).
    if segs.iter().any(|s| s.contains(char::is_whitespace)) {
        return None;
    }
    let (e, path) = match (segs, method) {
        (["version"], "GET") => (ep(&[], None, info::version), vec![]),
        (["access", "permissions"], "GET") => {
            let schema: &[Prop] = &[("path", Ty::Str, true), ("userid", Ty::Str, true)];
            (ep(schema, None, info::permissions), vec![])
        }
        (["cluster", "firewall", "rules"], "GET") => (ep(&[], AUDIT, info::rules), vec![]),
        (["cluster", "firewall", "options"], "GET") => (ep(&[], AUDIT, info::options), vec![]),
        (["cluster", "firewall", "ipset"], "GET") => (ep(&[], AUDIT, ipset::index), vec![]),
        (["cluster", "firewall", "ipset"], "POST") => {
            let schema: &[Prop] = &[NAME, COMMENT, DIGEST, ("rename", Ty::Name, true)];
            (ep(schema, MODIFY, ipset::create_ipset), vec![])
        }
        (["cluster", "firewall", "ipset", name], m) => {
            let e = match m {
                "GET" => ep(&[NAME], AUDIT, ipset::get_ipset),
                "POST" => ep(&[NAME, CIDR, COMMENT, NOMATCH], MODIFY, ipset::create_ip),
                "DELETE" => ep(
                    &[NAME, ("force", Ty::Bool, true)],
                    MODIFY,
                    ipset::delete_ipset,
                ),
                _ => return None,
            };
            (e, vec![("name", name.to_string())])
        }
        (["cluster", "firewall", "ipset", name, cidr @ ..], m) => {
            let e = match m {
                "GET" => ep(&[NAME, CIDR], AUDIT, ipset::read_ip),
                "PUT" => ep(
                    &[NAME, CIDR, COMMENT, NOMATCH, DIGEST],
                    MODIFY,
                    ipset::update_ip,
                ),
                "DELETE" => ep(&[NAME, CIDR, DIGEST], MODIFY, ipset::remove_ip),
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
