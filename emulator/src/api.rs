//! The request pipeline of §5 from the path check on: authentication, body
//! checks, routing, path-versus-body conflicts, privileges, schema, handler;
//! and the encoding of results and errors (§6, §13).

use crate::Token;
use crate::auth::{self, AuthError};
use crate::ipset::ApiResult;
use crate::params::{self, PVal, Params};
use crate::routes::{Endpoint, route};
use crate::server::Shared;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// PVE's request body limit (http-server ≥ 5.2.1, §5 step 5).
const MAX_BODY: usize = 512 * 1024;

/// A parsed request head.
pub(crate) struct Head {
    pub method: String,
    pub target: String,
    /// HTTP/1.x minor version.
    pub minor: u8,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn content_length(&self) -> usize {
        self.header("Content-Length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// What goes on the wire; `http` adds the standard headers.
pub(crate) struct Response {
    pub status: u16,
    pub reason: String,
    pub body: Vec<u8>,
    /// `Content-Type: application/json;charset=UTF-8` when set; server-level
    /// errors and 401s carry none (§6).
    pub json: bool,
}

impl Response {
    /// An error raised by the web server itself: the message is the body.
    pub fn text(status: u16, message: &str) -> Response {
        Response {
            status,
            reason: message.into(),
            body: message.as_bytes().to_vec(),
            json: false,
        }
    }

    fn ok(data: Value) -> Response {
        let body = json!({ "data": data }).to_string().into_bytes();
        Response {
            status: 200,
            reason: "OK".into(),
            body,
            json: true,
        }
    }

    /// A handler error through the formatter: the reason phrase is the first
    /// line of the message, the body `{"data":null,"errors"?,"message"?}`.
    fn error(e: ApiError, legacy: bool) -> Response {
        // A CR in the text forces 400 (`response` in AnyEvent.pm).
        let status = if e.message.contains('\r') {
            400
        } else {
            e.status
        };
        let reason = e.message.lines().next().unwrap_or_default().to_string();
        let mut body = serde_json::Map::new();
        body.insert("data".into(), Value::Null);
        if let Some(errors) = e.errors {
            body.insert("errors".into(), json!(errors));
        }
        if !legacy {
            body.insert("message".into(), json!(e.message));
        }
        Response {
            status,
            reason,
            body: Value::Object(body).to_string().into_bytes(),
            json: true,
        }
    }
}

/// An error a handler (or a later pipeline step) raises.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: u16,
    /// Including the trailing newline that `die "...\n"` leaves in it.
    pub message: String,
    pub errors: Option<BTreeMap<String, String>>,
}

impl ApiError {
    /// A plain `die "...\n"`: 500 with the text as message.
    pub fn die(message: String) -> ApiError {
        ApiError {
            status: 500,
            message: message + "\n",
            errors: None,
        }
    }

    /// `raise_param_exc({key => text})`.
    pub fn param(key: &str, text: &str) -> ApiError {
        ApiError::params(BTreeMap::from([(key.to_string(), text.to_string())]))
    }

    fn params(errors: BTreeMap<String, String>) -> ApiError {
        ApiError {
            status: 400,
            message: "Parameter verification failed.\n".into(),
            errors: Some(errors),
        }
    }
}

/// What survives the checks before the body is read.
pub(crate) struct Ctx {
    token: Token,
    rel: String,
    query: String,
}

/// §5 steps 3–5 before reading the body: path, authentication (401 after
/// the delay), body size and bodies on GET/DELETE.
pub(crate) fn before_body(shared: &Shared, head: &Head) -> Result<Ctx, Response> {
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
                let reason = match e {
                    AuthError::NoTicket => "No ticket",
                    AuthError::Failed => "Authentication failed!",
                };
                return Err(Response {
                    status: 401,
                    reason: reason.into(),
                    body: Vec::new(),
                    json: false,
                });
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
    Ok(Ctx {
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
    ctx: Ctx,
    body: &[u8],
) -> (Response, Vec<(String, String)>) {
    let query: Vec<(String, PVal)> = params::parse_form(&ctx.query)
        .into_iter()
        .map(|(k, v)| (k, PVal::Str(v)))
        .collect();
    let body_pairs = match body_params(head, body) {
        Ok(b) => b,
        Err(resp) => return (resp, params::flatten(&query)),
    };
    let sent = params::flatten(&[body_pairs.clone(), query.clone()].concat());
    let mut p = Params::new();
    params::merge(&mut p, body_pairs);
    params::merge(&mut p, query);
    p.remove("_dc");
    let legacy = shared.legacy_errors;
    let segs: Vec<&str> = ctx.rel.split('/').filter(|s| !s.is_empty()).collect();
    let Some((endpoint, path_params)) = route(&head.method, &segs) else {
        let e = ApiError {
            status: 501,
            message: format!("Method '{} {}' not implemented", head.method, ctx.rel),
            errors: None,
        };
        return (Response::error(e, legacy), sent);
    };
    let result = check_and_run(shared, &endpoint, path_params, p, &ctx.token);
    let response = match result {
        Ok(data) => {
            if head.method != "GET" {
                shared
                    .writes
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Response::ok(data)
        }
        Err(e) => Response::error(e, legacy),
    };
    (response, sent)
}

/// Steps 7–11: conflicts, privilege, schema, handler.
fn check_and_run(
    shared: &Shared,
    endpoint: &Endpoint,
    path_params: Vec<(&'static str, String)>,
    mut p: Params,
    token: &Token,
) -> ApiResult {
    let mut conflicts = BTreeMap::new();
    for (k, v) in path_params {
        if p.get(k).is_some_and(|given| *given != PVal::Str(v.clone())) {
            conflicts.insert(
                k.to_string(),
                "duplicate parameter (already defined in URI) with conflicting values!".to_string(),
            );
        }
        p.insert(k.to_string(), PVal::Str(v));
    }
    if !conflicts.is_empty() {
        return Err(ApiError::params(conflicts));
    }
    if let Some(privilege) = endpoint.privilege {
        let held = if privilege == "Sys.Audit" {
            token.audit
        } else {
            token.modify
        };
        if !held {
            return Err(ApiError {
                status: 403,
                message: format!("Permission check failed (/, {privilege})\n"),
                errors: None,
            });
        }
    }
    params::validate(endpoint.schema, &p).map_err(ApiError::params)?;
    (endpoint.handler)(shared, &p, token)
}

/// POST/PUT bodies (§1.2): form-urlencoded (also without a Content-Type)
/// or JSON; anything else is refused by the server itself.
fn body_params(head: &Head, body: &[u8]) -> Result<Vec<(String, PVal)>, Response> {
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
                .map(|(k, v)| (k, PVal::Str(v)))
                .collect())
        }
        "application/json" => params::parse_json(body)
            .map_err(|e| Response::text(500, &format!("malformed JSON string: {e}"))),
        _ => Err(Response::text(
            506,
            &format!("upload 'Content-Type '{ct}' not implemented"),
        )),
    }
}
