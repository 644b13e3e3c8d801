//! Results and errors as PVE's JSON formatter puts them on the wire (§6,
//! §13): the reason phrase carries the message, the body is compact JSON.

use crate::error::ApiError;
use serde_json::{Map, Value, json};

/// An answer exactly as the HTTPS server sends it: status, reason phrase
/// (the message's first line for errors) and the JSON body. Its
/// `Content-Type` is always `application/json;charset=UTF-8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub body: String,
}

impl Response {
    /// 200 `{"data":…}`.
    pub(crate) fn ok(data: Value) -> Response {
        Response {
            status: 200,
            reason: "OK".into(),
            body: json!({ "data": data }).to_string(),
        }
    }

    /// `{"data":null}` plus `errors` when present, plus `message` unless
    /// `legacy` (http-server < 5.2.0). A CR in the message forces 400
    /// (`response` in AnyEvent.pm).
    pub(crate) fn error(e: ApiError, legacy: bool) -> Response {
        let status = if e.message.contains('\r') {
            400
        } else {
            e.status
        };
        let reason = e.message.lines().next().unwrap_or_default().to_string();
        let mut body = Map::new();
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
            body: Value::Object(body).to_string(),
        }
    }

    pub(crate) fn of(result: Result<Value, ApiError>, legacy: bool) -> Response {
        match result {
            Ok(data) => Response::ok(data),
            Err(e) => Response::error(e, legacy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_message_in_reason_and_body() {
        let r = Response::error(ApiError::die("no such IPSet 'x'"), false);
        assert_eq!((r.status, r.reason.as_str()), (500, "no such IPSet 'x'"));
        assert_eq!(r.body, r#"{"data":null,"message":"no such IPSet 'x'\n"}"#);
        let r = Response::error(ApiError::param("cidr", "bad"), true);
        assert_eq!(r.reason, "Parameter verification failed.");
        assert_eq!(r.body, r#"{"data":null,"errors":{"cidr":"bad"}}"#);
        assert_eq!(Response::error(ApiError::die("a\rb"), true).status, 400);
    }
}
