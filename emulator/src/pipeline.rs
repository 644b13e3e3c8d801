//! The web server's part of the request pipeline (§5 steps 3–5): the path,
//! authentication, the body and where parameters come from (§1.2). The
//! rest is the model's, with the cluster lock and injected faults taken
//! between its checks and the handler.

use crate::auth::{self, AuthError};
use crate::options::{Fault, Token};
use crate::state::Shared;
use crate::wire::{Head, Response};
use pve_model::params::{self, Param, Params};
use pve_model::{Call, Caller};
use std::sync::atomic::Ordering;

/// PVE's request body limit (http-server ≥ 5.2.1, §5 step 5).
const MAX_BODY: usize = 512 * 1024;

/// What survives the checks before the body is read.
pub(crate) struct Admitted {
    token: Token,
    /// The path after `/api2/json`, decoded.
    rel: String,
    query: String,
}

/// §5 steps 3–5 before reading the body: path, authentication (401 after
/// the delay), body size and bodies on GET/DELETE.
pub(crate) fn before_body(shared: &Shared, head: &Head) -> Result<Admitted, Response> {
    let (raw_path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
    let path = params::percent_decode(raw_path, false);
    let Some(rest) = path
        .strip_prefix("/api2/")
        .or((path == "/api2").then_some(""))
    else {
        // pveproxy would serve a static file here; there are none.
        return Err(Response::text(404, "File not found"));
    };
    let (format, rel) = match rest.split_once('/') {
        Some((f, r)) => (f, format!("/{r}")),
        None => (rest, String::new()),
    };
    // Only the json formatter is emulated; extjs, html, … answer as unknown.
    if format != "json" {
        return Err(Response::text(501, "no such uri"));
    }
    let tokens = shared.tokens.lock().unwrap().clone();
    let token =
        match auth::authenticate(head.header("Authorization"), head.header("Cookie"), &tokens) {
            Ok(t) => t,
            Err(e) => {
                std::thread::sleep(shared.auth_delay);
                return Err(Response::unauthorized(match e {
                    AuthError::NoTicket => "No ticket",
                    AuthError::Failed => "Authentication failed!",
                }));
            }
        };
    let len = head.content_length();
    if len > MAX_BODY {
        return Err(Response::text(501, "for data too large"));
    }
    if len > 0 && (head.method == "GET" || head.method == "DELETE") {
        return Err(Response::text(
            501,
            &format!("Unexpected content for method '{}'", head.method),
        ));
    }
    Ok(Admitted {
        token,
        rel,
        query: query.to_string(),
    })
}

/// §5 steps 5–11 once the body is read. Returns the response and the
/// decoded parameters the client sent, for [`crate::Recorded`].
pub(crate) fn handle(
    shared: &Shared,
    head: &Head,
    admitted: Admitted,
    body: &[u8],
) -> (Response, Vec<(String, String)>) {
    let query: Vec<(String, Param)> = params::parse_form(&admitted.query)
        .into_iter()
        .map(|(k, v)| (k, Param::Str(v)))
        .collect();
    let body_pairs = match body_params(head, body) {
        Ok(b) => b,
        Err(resp) => return (resp, flatten(&query)),
    };
    let sent = flatten(&[body_pairs.clone(), query.clone()].concat());
    let mut p = Params::new();
    params::merge(&mut p, body_pairs);
    params::merge(&mut p, query);
    let caller = Caller {
        audit: admitted.token.audit,
        modify: admitted.token.modify,
    };
    // The model decodes the path itself: hand it the decoded path with its
    // `%` escaped, so that it decodes to exactly what PVE sees.
    let path = admitted.rel.replace('%', "%25");
    let prepared = shared.cluster().prepare(&head.method, &path, p, &caller);
    let response = match prepared {
        Ok(call) => run(shared, &call),
        Err(refused) => refused,
    };
    if head.method != "GET" && response.status == 200 {
        shared.writes.fetch_add(1, Ordering::SeqCst);
    }
    (response.into(), sent)
}

/// The handler, a write under the cluster lock (§8.2) with the next
/// injected fault consumed first; a saved file is persisted.
fn run(shared: &Shared, call: &Call) -> pve_model::Response {
    if !call.writes() {
        return shared.cluster().run(call);
    }
    let _cfs_lock = shared.write_lock.lock().unwrap_or_else(|e| e.into_inner());
    let fault = shared.faults.lock().unwrap().pop_front();
    match fault {
        Some(Fault::LockTimeout) => {
            let m = "cfs-lock 'firewall-cluster' error: got lock request timeout";
            return shared.cluster().fail(500, m);
        }
        Some(Fault::Status(status, message)) => return shared.cluster().fail(status, &message),
        Some(Fault::Stall(d)) => std::thread::sleep(d),
        None => {}
    }
    let mut cluster = shared.cluster();
    let saves = cluster.saves();
    let response = cluster.run(call);
    if cluster.saves() != saves {
        let text = cluster.cluster_fw().to_vec();
        drop(cluster);
        shared.persist(&text);
    }
    response
}

/// POST/PUT bodies (§1.2): form-urlencoded (also without a Content-Type)
/// or JSON; anything else is refused by the server itself.
fn body_params(head: &Head, body: &[u8]) -> Result<Vec<(String, Param)>, Response> {
    if body.is_empty() || !(head.method == "POST" || head.method == "PUT") {
        return Ok(Vec::new());
    }
    let ct = head.header("Content-Type").unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "" | "application/x-www-form-urlencoded" => {
            Ok(params::parse_form(&String::from_utf8_lossy(body))
                .into_iter()
                .map(|(k, v)| (k, Param::Str(v)))
                .collect())
        }
        "application/json" => parse_json(body)
            .map_err(|e| Response::text(500, &format!("malformed JSON string: {e}"))),
        _ => Err(Response::text(
            506,
            &format!("upload 'Content-Type '{ct}' not implemented"),
        )),
    }
}

/// An `application/json` body: an object whose scalars become strings
/// (booleans 1/0, as JSON::PP booleans pass the boolean check); null means
/// absent.
fn parse_json(body: &[u8]) -> Result<Vec<(String, Param)>, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let serde_json::Value::Object(map) = value else {
        return Err("JSON body is not an object".into());
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let v = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::Bool(b) => Param::Str(if b { "1" } else { "0" }.into()),
            serde_json::Value::Number(n) => Param::Str(n.to_string()),
            serde_json::Value::String(s) => Param::Str(s),
            serde_json::Value::Array(_) => Param::Ref("ARRAY"),
            serde_json::Value::Object(_) => Param::Ref("HASH"),
        };
        out.push((k, v));
    }
    Ok(out)
}

/// Parameters as sent, for [`crate::Recorded`].
fn flatten(pairs: &[(String, Param)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        match v {
            Param::Str(s) => out.push((k.clone(), s.clone())),
            Param::List(l) => out.extend(l.iter().map(|s| (k.clone(), s.clone()))),
            Param::Ref(r) => out.push((k.clone(), r.to_string())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies() {
        let p = parse_json(br#"{"cidr":"1.2.3.4","nomatch":true,"n":1,"z":null,"l":[1]}"#).unwrap();
        assert_eq!(
            p,
            vec![
                ("cidr".into(), Param::Str("1.2.3.4".into())),
                ("l".into(), Param::Ref("ARRAY")),
                ("n".into(), Param::Str("1".into())),
                ("nomatch".into(), Param::Str("1".into())),
            ]
        );
        assert!(parse_json(b"[1]").is_err());
        assert!(parse_json(b"{").is_err());
    }
}
