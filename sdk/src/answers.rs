//! What PVE's answers mean, as the WIT error cases: the host never reads
//! PVE's words, it acts on the case a policy returns, so every policy
//! should judge them alike.
//!
//! | PVE answered | means |
//! |---|---|
//! | 2xx | done |
//! | POST 400 with `errors.cidr` = `address 'X' already exists` | done: the entry is there ([`is_already_there`]) |
//! | another 400 | [`Error::Rejected`], [`Cause::Parameter`] |
//! | 401 | [`Error::Refused`], [`Cause::Authentication`] |
//! | 403 | [`Error::Refused`], [`Cause::Permission`] |
//! | 500 `no such IPSet 'X'` | [`Error::Refused`], [`Cause::NoSuchIpset`] |
//! | 500 `… File too large` | [`Error::Refused`], [`Cause::Capacity`] |
//! | another 500 (the cluster lock timed out, the IPSet changed since a read), 502–504 | [`Error::Busy`] |
//! | 501 (no such method) | [`Error::Rejected`], [`Cause::Other`] |
//! | any other status | [`Error::Refused`], [`Cause::Other`] |
//!
//! A DELETE of a missing entry is answered `200` (PVE deletes by exact
//! string and does not check; the host answers so itself without a write).

use serde_json::Value;

use crate::comment;
use crate::types::{Cause, Error, Response};

/// The most characters of PVE's words passed on. A reason phrase or body
/// can be anything; the host logs it, and fail2ban logs that.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// A 2xx.
pub fn is_success(response: &Response) -> bool {
    response.is_success()
}

/// PVE's answer to a POST of an entry that is already there: 400 with
/// `errors.cidr` = `address 'X' already exists`. Success for a ban.
pub fn is_already_there(response: &Response) -> bool {
    if response.status != 400 {
        return false;
    }
    let body: Option<Value> = serde_json::from_str(&response.body).ok();
    body.as_ref()
        .and_then(|body| body.get("errors"))
        .and_then(|errors| errors.get("cidr"))
        .and_then(Value::as_str)
        .map(str::trim_end)
        .is_some_and(|text| text.starts_with("address '") && text.ends_with("' already exists"))
}

/// What an error response means, as the WIT `error` variant (the table
/// above):
/// - `busy` where a later retry can succeed by itself (a 5xx, the cluster
///   lock above all);
/// - `refused` where a person must act (401, 403, no such IPSet, a full
///   cluster.fw, or a status we do not know);
/// - `rejected` where this request can never succeed as sent (400, 501).
pub fn classify(response: &Response) -> Error {
    let status = response.status;
    let message = message(response);
    let lasting = |cause| Error::Refused {
        status,
        message: message.clone(),
        cause,
    };
    match status {
        401 => lasting(Cause::Authentication),
        403 => lasting(Cause::Permission),
        // PVE turns every `die` into a 500: two are lasting, the others
        // (the cfs lock timeout above all) are not.
        500 if message.contains("no such IPSet") => lasting(Cause::NoSuchIpset),
        500 if message.contains("File too large") => lasting(Cause::Capacity),
        500 | 502..=504 => Error::Busy(format!("{status} {message}")),
        400 | 501 => Error::Rejected {
            status,
            message,
            cause: if status == 400 {
                Cause::Parameter
            } else {
                Cause::Other
            },
        },
        _ => lasting(Cause::Other),
    }
}

/// `Ok` for a 2xx, else the error it means ([`classify`]).
pub fn judge(response: Response) -> Result<Response, Error> {
    if response.is_success() {
        Ok(response)
    } else {
        Err(classify(&response))
    }
}

/// PVE's own words for an error response: the JSON `message`, else the
/// reason phrase, else a plain text body; then the `errors` map as
/// `(key: value; ...)`. One line, cut to [`MAX_MESSAGE_CHARS`].
pub fn message(response: &Response) -> String {
    let body: Option<Value> = serde_json::from_str(&response.body).ok();
    let json_message = body
        .as_ref()
        .and_then(|body| body.get("message"))
        .and_then(Value::as_str);
    // A web-server error (501, 506) carries its text as a plain body.
    let text_body = body.is_none().then_some(response.body.as_str());
    let text = [json_message, Some(response.reason.as_str()), text_body]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|text| !text.is_empty())
        .map_or_else(|| format!("HTTP {}", response.status), str::to_string);
    let errors = body
        .as_ref()
        .and_then(|body| body.get("errors"))
        .and_then(Value::as_object)
        .map(|errors| {
            errors
                .iter()
                .map(|(key, value)| match value.as_str() {
                    Some(value) => format!("{key}: {}", value.trim_end()),
                    None => format!("{key}: {value}"),
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let full = if errors.is_empty() {
        text
    } else {
        format!("{text} ({})", errors.join("; "))
    };
    comment::one_line(&full, MAX_MESSAGE_CHARS)
}

/// One line about one PVE call, for the debug log: method, path,
/// parameters, and the status or the error. The policy holds no secrets;
/// the host adds the token.
pub fn describe_call(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    outcome: &Result<Response, Error>,
) -> String {
    let mut line = format!("{method} {path}");
    for (key, value) in params {
        line.push_str(&format!(" {key}={value:?}"));
    }
    match outcome {
        Ok(response) => line.push_str(&format!(" -> {} {}", response.status, response.reason)),
        Err(error) => line.push_str(&format!(" -> {error}")),
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(status: u16, reason: &str, body: &str) -> Error {
        classify(&Response {
            status,
            reason: reason.into(),
            body: body.into(),
        })
    }

    fn refused(status: u16, message: &str, cause: Cause) -> Error {
        Error::Refused {
            status,
            message: message.to_string(),
            cause,
        }
    }

    fn rejected(status: u16, message: &str) -> Error {
        let cause = if status == 400 {
            Cause::Parameter
        } else {
            Cause::Other
        };
        Error::Rejected {
            status,
            message: message.to_string(),
            cause,
        }
    }

    const DUPLICATE: &str = r#"{"data":null,"errors":{"cidr":"address '10.0.0.0/8' already exists"},"message":"Parameter verification failed.\n"}"#;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            reason: "Parameter verification failed.".into(),
            body: body.into(),
        }
    }

    #[test]
    fn a_duplicate_is_recognised_in_new_and_old_bodies() {
        assert!(is_already_there(&response(400, DUPLICATE)));
        let old = r#"{"data":null,"errors":{"cidr":"address '10.0.0.0/8' already exists"}}"#;
        assert!(is_already_there(&response(400, old)));
        let other = r#"{"data":null,"errors":{"comment":"address 'x' already exists"}}"#;
        assert!(!is_already_there(&response(400, other)));
        assert!(!is_already_there(&response(500, DUPLICATE)));
    }

    #[test]
    fn another_400_is_rejected_with_pves_words() {
        let body = r#"{"data":null,"errors":{"cidr":"a zero prefix is not allowed in ipset entries"},"message":"Parameter verification failed.\n"}"#;
        assert_eq!(
            judged(400, "Parameter verification failed.", body),
            rejected(
                400,
                "Parameter verification failed. (cidr: a zero prefix is not allowed in ipset entries)"
            )
        );
    }

    #[test]
    fn a_missing_ipset_and_a_full_cluster_fw_are_refused() {
        let body = r#"{"data":null,"message":"no such IPSet 'f2b'\n"}"#;
        assert_eq!(
            judged(500, "no such IPSet 'f2b'", body),
            refused(500, "no such IPSet 'f2b'", Cause::NoSuchIpset)
        );
        let reason = "unable to write '/etc/pve/firewall/cluster.fw.tmp.4242' - File too large";
        assert_eq!(
            judged(500, reason, r#"{"data":null}"#),
            refused(500, reason, Cause::Capacity)
        );
    }

    #[test]
    fn authentication_and_privilege_errors_are_refused() {
        assert_eq!(
            judged(401, "No ticket", ""),
            refused(401, "No ticket", Cause::Authentication)
        );
        assert_eq!(
            judged(401, "Authentication failed!", ""),
            refused(401, "Authentication failed!", Cause::Authentication)
        );
        let body = r#"{"data":null,"message":"Permission check failed (/, Sys.Modify)\n"}"#;
        assert_eq!(
            judged(403, "Permission check failed (/, Sys.Modify)", body),
            refused(
                403,
                "Permission check failed (/, Sys.Modify)",
                Cause::Permission
            )
        );
    }

    #[test]
    fn server_errors_other_than_lasting_ones_are_busy() {
        let reason = "cfs-lock 'firewall-cluster' error: got lock request timeout";
        let body = format!(r#"{{"data":null,"message":"{reason}\n"}}"#);
        assert_eq!(
            judged(500, reason, &body),
            Error::Busy(format!("500 {reason}"))
        );
        assert_eq!(
            judged(
                500,
                "detected modified configuration - file changed by other user? Try again.",
                ""
            ),
            Error::Busy(
                "500 detected modified configuration - file changed by other user? Try again."
                    .into()
            )
        );
        assert_eq!(
            judged(500, "cfs-lock 'firewall-cluster' error: no quorum!", ""),
            Error::Busy("500 cfs-lock 'firewall-cluster' error: no quorum!".into())
        );
        assert_eq!(
            judged(502, "Bad Gateway", ""),
            Error::Busy("502 Bad Gateway".into())
        );
        assert_eq!(
            judged(503, "Service Unavailable", ""),
            Error::Busy("503 Service Unavailable".into())
        );
        assert_eq!(judged(504, "", ""), Error::Busy("504 HTTP 504".into()));
    }

    #[test]
    fn other_client_errors_are_rejected_or_refused() {
        assert_eq!(
            judged(
                501,
                "Method 'PUT /cluster/firewall/ipset/f2b' not implemented",
                ""
            ),
            rejected(
                501,
                "Method 'PUT /cluster/firewall/ipset/f2b' not implemented"
            )
        );
        // A web-server error with its text in a plain body and no reason.
        assert_eq!(
            judged(506, "", "unable to parse request header\n"),
            refused(506, "unable to parse request header", Cause::Other)
        );
        assert_eq!(
            judged(404, "Not Found", ""),
            refused(404, "Not Found", Cause::Other)
        );
    }

    #[test]
    fn message_prefers_json_then_reason_and_appends_errors() {
        let response = |reason: &str, body: &str| Response {
            status: 400,
            reason: reason.into(),
            body: body.into(),
        };
        // `message`, with its trailing newline trimmed, beats the reason.
        assert_eq!(
            message(&response("reason", r#"{"message":"json\n"}"#)),
            "json"
        );
        // Old servers: the reason phrase.
        let body = r#"{"data":null,"errors":{"name":"value does not match the regex pattern","cidr":"invalid format - value does not look like a valid IP address or CIDR network\n"}}"#;
        assert_eq!(
            message(&response("Parameter verification failed.", body)),
            "Parameter verification failed. (cidr: invalid format - value does not look like a \
             valid IP address or CIDR network; name: value does not match the regex pattern)"
        );
        // Newlines anywhere become spaces; huge texts are cut.
        assert_eq!(message(&response("a\r\nb", "")), "a b");
        let long = "x".repeat(5000);
        assert_eq!(
            message(&response(&long, "")).chars().count(),
            MAX_MESSAGE_CHARS
        );
    }

    #[test]
    fn describe_call_is_one_line_without_surprises() {
        let ok = Ok(Response {
            status: 200,
            reason: "OK".into(),
            body: String::new(),
        });
        assert_eq!(
            describe_call(
                "POST",
                "/cluster/firewall/ipset/f2b",
                &[
                    ("cidr", "1.2.3.4"),
                    ("comment", "[2026/11/26 01:02:03] sshd")
                ],
                &ok
            ),
            r#"POST /cluster/firewall/ipset/f2b cidr="1.2.3.4" comment="[2026/11/26 01:02:03] sshd" -> 200 OK"#
        );
        let err = Err(Error::Unreachable("timed out".into()));
        assert_eq!(
            describe_call("GET", "/cluster/firewall/ipset/f2b", &[], &err),
            "GET /cluster/firewall/ipset/f2b -> PVE unreachable: timed out"
        );
    }

    #[test]
    fn judge_passes_success_and_classifies_the_rest() {
        let ok = Response {
            status: 200,
            reason: "OK".into(),
            body: r#"{"data":null}"#.into(),
        };
        assert_eq!(judge(ok.clone()), Ok(ok));
        assert!(matches!(
            judge(response(400, DUPLICATE)),
            Err(Error::Rejected { status: 400, .. })
        ));
    }
}
