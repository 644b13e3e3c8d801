//! The steps of PVE's request pipeline that come after the web server's
//! own (§5 steps 6–11): routing, path-versus-body conflicts, privileges,
//! the schema, then the handler.

use crate::context::{Caller, Ctx};
use crate::error::ApiError;
use crate::ipset::ApiResult;
use crate::params::{self, Param, Params};
use crate::routes::{Endpoint, route};
use std::collections::BTreeMap;

/// A request that passed every check before its handler: what is left is
/// the handler's own code, which [`crate::Cluster::run`] runs.
#[derive(Clone)]
pub struct Call {
    endpoint: Endpoint,
    params: Params,
    caller: Caller,
    writes: bool,
}

impl Call {
    /// Whether the handler writes `cluster.fw` (POST, PUT, DELETE): PVE
    /// runs it under the cluster-wide lock (§8.2).
    pub fn writes(&self) -> bool {
        self.writes
    }

    pub(crate) fn caller(&self) -> Caller {
        self.caller
    }
}

/// Steps 6–10. `path` is relative to `/api2/json`, percent-encoded.
pub(crate) fn prepare(
    method: &str,
    path: &str,
    mut p: Params,
    caller: &Caller,
) -> Result<Call, ApiError> {
    let rel = params::percent_decode(path, false);
    let segs: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    let Some((endpoint, path_params)) = route(method, &segs) else {
        // rest_handler's own answer: no trailing newline.
        return Err(ApiError {
            status: 501,
            message: format!("Method '{method} {rel}' not implemented"),
            errors: None,
        });
    };
    p.remove("_dc");
    let mut conflicts = BTreeMap::new();
    for (k, v) in path_params {
        if p.get(k)
            .is_some_and(|given| *given != Param::Str(v.clone()))
        {
            let text = "duplicate parameter (already defined in URI) with conflicting values!";
            conflicts.insert(k.to_string(), text.to_string());
        }
        p.insert(k.to_string(), Param::Str(v));
    }
    if !conflicts.is_empty() {
        return Err(ApiError::params(conflicts));
    }
    if let Some(privilege) = endpoint.privilege {
        let held = match privilege {
            "Sys.Audit" => caller.audit,
            _ => caller.modify,
        };
        if !held {
            return Err(ApiError::status(
                403,
                format!("Permission check failed (/, {privilege})"),
            ));
        }
    }
    params::validate(endpoint.schema, &p).map_err(ApiError::params)?;
    Ok(Call {
        endpoint,
        params: p,
        caller: *caller,
        writes: method != "GET",
    })
}

/// Step 11: the handler.
pub(crate) fn run(call: &Call, ctx: &mut Ctx) -> ApiResult {
    (call.endpoint.handler)(ctx, &call.params)
}
