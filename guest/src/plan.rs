//! Which PVE calls each action makes, and what PVE's answers mean.
//!
//! Generic over [`Pve`], so the tests below drive it with a fake; `lib.rs`
//! implements [`Pve`] with the host's `pve` import.

use std::fmt;

use serde_json::Value;

use crate::cidr::{self, Entry};
use crate::comment;
use crate::owner::Owner;

/// Where datacenter IPSets live, relative to `/api2/json`.
pub const IPSET_API: &str = "/cluster/firewall/ipset";

/// The most characters of PVE's words we pass on. A reason phrase or body
/// can be anything; the host logs it, and fail2ban logs that.
const MAX_MESSAGE_CHARS: usize = 300;

/// The HTTP methods the policy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// An HTTP response from PVE, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The status line's reason phrase, where PVE puts its error text.
    pub reason: String,
    /// `{"data":...}` JSON, a plain text error, or empty (401).
    pub body: String,
}

/// Why an action failed; the WIT `error` variant, one case per remedy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad input; nothing was sent.
    InvalidInput(String),
    /// The host refused a capability or a write (its guard rails).
    Denied(String),
    /// PVE refused; a person must fix something first.
    Refused {
        status: u16,
        message: String,
        cause: Cause,
    },
    /// PVE will never accept this request as sent (a bad parameter).
    Rejected {
        status: u16,
        message: String,
        cause: Cause,
    },
    /// The host left an entry alone: someone else wrote it.
    NotOurs(String),
    /// No answer from PVE.
    Unreachable(String),
    /// PVE could not do it now; retry later.
    Busy(String),
}

/// What a refusal is about (the WIT `refusal-cause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Authentication,
    Permission,
    NoSuchIpset,
    Capacity,
    Parameter,
    Other,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::Denied(m) => write!(f, "denied by the host: {m}"),
            Error::Refused {
                status, message, ..
            }
            | Error::Rejected {
                status, message, ..
            } => write!(f, "PVE refused: {status} {message}"),
            Error::NotOurs(m) => write!(f, "left alone: {m}"),
            Error::Unreachable(m) => write!(f, "PVE unreachable: {m}"),
            Error::Busy(m) => write!(f, "PVE busy: {m}"),
        }
    }
}

/// The host's `pve` capability: one HTTP request to the cluster.
pub trait Pve {
    /// `path` is relative to `/api2/json` and already percent-encoded.
    /// Errors: only [`Error::Denied`] and [`Error::Unreachable`].
    fn request(
        &mut self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Response, Error>;
}

/// A datacenter IPSet name we can use: `^[a-z][a-z0-9_-]{1,63}$`.
///
/// PVE itself takes upper case too, but lower-cases names when it re-reads
/// `cluster.fw` (pve-ipset-api.md §2.1), after which `MySet` is gone and only
/// `myset` exists. So upper case is refused here rather than half working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsetName(String);

impl IpsetName {
    pub fn new(name: &str) -> Result<Self, Error> {
        if is_ipset_name(name) {
            return Ok(IpsetName(name.to_string()));
        }
        let quoted = cidr::quote(name);
        let lower = name.to_ascii_lowercase();
        let message = if is_ipset_name(&lower) {
            format!(
                "{quoted} is not a usable IPSet name: PVE lower-cases IPSet names when it \
                 re-reads cluster.fw, so use '{lower}'"
            )
        } else {
            format!(
                "{quoted} is not a usable IPSet name: use 2 to 64 lower-case letters, digits, \
                 '-' or '_', starting with a letter"
            )
        };
        Err(Error::InvalidInput(message))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `/cluster/firewall/ipset/{name}`; the name needs no encoding.
    fn path(&self) -> String {
        format!("{IPSET_API}/{}", self.0)
    }
}

impl fmt::Display for IpsetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_ipset_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (2..=64).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
}

/// Checks an IPSet name and an address without any I/O; the entry is the
/// exact string PVE will store.
pub fn validate(ipset: &str, ip: &str) -> Result<(IpsetName, Entry), Error> {
    let ipset = IpsetName::new(ipset)?;
    let entry = cidr::normalize(ip).map_err(Error::InvalidInput)?;
    Ok((ipset, entry))
}

/// `POST /cluster/firewall/ipset/{ipset}` with `cidr` and `comment`. An entry
/// that is already there is success: fail2ban re-applies bans on restart,
/// and a retried POST may have landed the first time. Then one GET of the
/// entry says in the words whose it is: someone else's entry stays when
/// this address is unbanned (the host sends no DELETE of it).
/// `instance` is this instance as its tags name it.
pub fn ban(
    pve: &mut impl Pve,
    ipset: &IpsetName,
    entry: &Entry,
    comment: &str,
    instance: &str,
) -> Result<String, Error> {
    let params = [("cidr", entry.as_str()), ("comment", comment)];
    let response = pve.request(Method::Post, &ipset.path(), &params)?;
    if is_success(&response) {
        return Ok(format!("added {entry} to IPSet '{ipset}'"));
    }
    if is_already_there(&response) {
        return Ok(already_there(pve, ipset, entry, instance));
    }
    Err(pve_error(&response))
}

/// The words for an entry a ban found already there, after one GET of it:
/// ours, another instance's, or someone else's. If the read fails, just
/// that it was there: the ban succeeded all the same.
fn already_there(pve: &mut impl Pve, ipset: &IpsetName, entry: &Entry, instance: &str) -> String {
    let plain = format!("{entry} was already in IPSet '{ipset}'");
    let path = format!("{}/{}", ipset.path(), entry.path_segment());
    let read = match pve.request(Method::Get, &path, &[]) {
        Ok(read) if is_success(&read) => read,
        _ => return plain,
    };
    let Some(data) = serde_json::from_str::<Value>(&read.body)
        .ok()
        .and_then(|body| body.get("data").cloned())
        .filter(Value::is_object)
    else {
        return plain;
    };
    let comment = data.get("comment").and_then(Value::as_str);
    match comment.and_then(Owner::parse) {
        Some(owner) if owner.instance == instance => format!("{plain} (our entry)"),
        Some(owner) => format!(
            "{plain} as an entry of instance '{}': not ours, so unbanning it here leaves it",
            owner.instance
        ),
        None => {
            let shown = comment.map_or_else(
                || "no comment".to_string(),
                |c| format!("comment '{}'", comment::one_line(c, 100)),
            );
            format!(
                "{plain} as someone else's entry ({shown}): not ours, so unbanning it leaves it"
            )
        }
    }
}

/// `DELETE /cluster/firewall/ipset/{ipset}/{entry}`, the `/` of a prefix
/// percent-encoded. PVE deletes by exact string and answers 200 whether or
/// not the entry was there, so this is idempotent by itself. The host sends
/// it only when the entry carries our ownership tag; someone else's entry
/// (`not-ours`) is left alone, which is this unban's right outcome.
pub fn unban(pve: &mut impl Pve, ipset: &IpsetName, entry: &Entry) -> Result<String, Error> {
    let path = format!("{}/{}", ipset.path(), entry.path_segment());
    let response = match pve.request(Method::Delete, &path, &[]) {
        Err(Error::NotOurs(why)) => {
            return Ok(format!("left {entry} in IPSet '{ipset}' alone: {why}"));
        }
        other => other?,
    };
    if is_success(&response) {
        return Ok(format!("{entry} is not in IPSet '{ipset}' any more"));
    }
    Err(pve_error(&response))
}

/// fail2ban's `actionstart`: PVE answers, the token may read, the IPSet exists.
pub fn start(pve: &mut impl Pve, ipset: &IpsetName) -> Result<String, Error> {
    let count = read_ipset(pve, ipset)?;
    Ok(format!("PVE is reachable; {}", holds(ipset, count)))
}

/// fail2ban's `actioncheck`: the IPSet is still there.
pub fn check(pve: &mut impl Pve, ipset: &IpsetName) -> Result<String, Error> {
    read_ipset(pve, ipset).map(|count| holds(ipset, count))
}

/// `GET /cluster/firewall/ipset/{ipset}`; the number of entries, if the body
/// says.
fn read_ipset(pve: &mut impl Pve, ipset: &IpsetName) -> Result<Option<usize>, Error> {
    let response = pve.request(Method::Get, &ipset.path(), &[])?;
    if !is_success(&response) {
        return Err(pve_error(&response));
    }
    let body: Option<Value> = serde_json::from_str(&response.body).ok();
    Ok(body
        .as_ref()
        .and_then(|body| body.get("data"))
        .and_then(Value::as_array)
        .map(Vec::len))
}

/// An IPSet entry as PVE returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub cidr: String,
    pub comment: Option<String>,
}

/// `GET /cluster/firewall/ipset/{ipset}`: every entry with its comment.
pub fn list(pve: &mut impl Pve, ipset: &IpsetName) -> Result<Vec<Listed>, Error> {
    let response = pve.request(Method::Get, &ipset.path(), &[])?;
    if !is_success(&response) {
        return Err(pve_error(&response));
    }
    let body: Value = serde_json::from_str(&response.body).map_err(|e| {
        Error::Busy(format!(
            "PVE answered GET {} with a body that is not JSON: {e}",
            ipset.path()
        ))
    })?;
    let entries = body.get("data").and_then(Value::as_array).ok_or_else(|| {
        Error::Busy(format!(
            "PVE answered GET {} without a data list",
            ipset.path()
        ))
    })?;
    Ok(entries
        .iter()
        .filter_map(|entry| {
            Some(Listed {
                cidr: entry.get("cidr")?.as_str()?.to_string(),
                comment: entry
                    .get("comment")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
        })
        .collect())
}

fn holds(ipset: &IpsetName, count: Option<usize>) -> String {
    match count {
        Some(1) => format!("IPSet '{ipset}' exists with 1 entry"),
        Some(n) => format!("IPSet '{ipset}' exists with {n} entries"),
        None => format!("IPSet '{ipset}' exists"),
    }
}

fn is_success(response: &Response) -> bool {
    (200..300).contains(&response.status)
}

/// PVE's duplicate answer: 400 with `errors.cidr` = `address 'X' already
/// exists`.
fn is_already_there(response: &Response) -> bool {
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

/// What an error response means, as the WIT `error` variant:
/// - `busy` where a later retry can succeed by itself (a 5xx, the cluster
///   lock above all);
/// - `refused` where a person must act (401, 403, no such IPSet, a full
///   cluster.fw, or a status we do not know);
/// - `rejected` where this request can never succeed as sent (400, 501).
pub fn pve_error(response: &Response) -> Error {
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

/// PVE's own words for an error response: the JSON `message`, else the
/// reason phrase, else a plain text body; then the `errors` map as
/// `(key: value; ...)`. One line, cut to a sane length.
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

/// One line about one PVE call, for the host's debug log: method, path,
/// parameters, and the status or the error. The policy holds no secrets; the
/// host adds the token.
pub fn describe_call(
    method: Method,
    path: &str,
    params: &[(&str, &str)],
    outcome: &Result<Response, Error>,
) -> String {
    let mut line = format!("{} {path}", method.as_str());
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

    /// One request as the fake saw it.
    #[derive(Debug, PartialEq, Eq)]
    struct Call {
        method: Method,
        path: String,
        params: Vec<(String, String)>,
    }

    /// Answers every request with the same outcome and records the calls.
    struct FakePve {
        answer: Result<Response, Error>,
        calls: Vec<Call>,
    }

    impl FakePve {
        fn answering(status: u16, reason: &str, body: &str) -> Self {
            FakePve {
                answer: Ok(Response {
                    status,
                    reason: reason.to_string(),
                    body: body.to_string(),
                }),
                calls: Vec::new(),
            }
        }

        fn failing(error: Error) -> Self {
            FakePve {
                answer: Err(error),
                calls: Vec::new(),
            }
        }

        fn only_call(&self) -> &Call {
            assert_eq!(self.calls.len(), 1, "{:?}", self.calls);
            &self.calls[0]
        }
    }

    impl Pve for FakePve {
        fn request(
            &mut self,
            method: Method,
            path: &str,
            params: &[(&str, &str)],
        ) -> Result<Response, Error> {
            self.calls.push(Call {
                method,
                path: path.to_string(),
                params: params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            });
            self.answer.clone()
        }
    }

    fn call(method: Method, path: &str, params: &[(&str, &str)]) -> Call {
        Call {
            method,
            path: path.to_string(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn set() -> IpsetName {
        IpsetName::new("f2b").unwrap()
    }

    fn entry(ip: &str) -> Entry {
        cidr::normalize(ip).unwrap()
    }

    fn refused(status: u16, message: &str, cause: Cause) -> Error {
        Error::Refused {
            status,
            message: message.to_string(),
            cause,
        }
    }

    fn rejected(status: u16, message: &str) -> Error {
        Error::Rejected {
            status,
            message: message.to_string(),
            cause: if status == 400 {
                Cause::Parameter
            } else {
                Cause::Other
            },
        }
    }

    const DUPLICATE: &str = r#"{"data":null,"errors":{"cidr":"address '10.0.0.0/8' already exists"},"message":"Parameter verification failed.\n"}"#;

    // --- IPSet names

    #[test]
    fn ipset_names() {
        for good in [
            "f2b",
            "fail2ban",
            "blacklist",
            "a1",
            "x-y_z",
            &"a".repeat(64),
        ] {
            assert!(IpsetName::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a",
            "1abc",
            "-ab",
            "a b",
            "a/b",
            "a.b",
            "dc/f2b",
            &"a".repeat(65),
        ] {
            let Err(Error::InvalidInput(m)) = IpsetName::new(bad) else {
                panic!("{bad:?} accepted");
            };
            assert!(m.contains("is not a usable IPSet name"), "{m}");
        }
    }

    #[test]
    fn upper_case_ipset_name_is_refused_with_the_reason() {
        assert_eq!(
            IpsetName::new("MySet"),
            Err(Error::InvalidInput(
                "'MySet' is not a usable IPSet name: PVE lower-cases IPSet names when it \
                 re-reads cluster.fw, so use 'myset'"
                    .into()
            ))
        );
    }

    // --- validate

    #[test]
    fn validate_returns_what_pve_stores_without_io() {
        let (ipset, entry) = validate("f2b", "10.0.0.1/8").unwrap();
        assert_eq!((ipset.as_str(), entry.as_str()), ("f2b", "10.0.0.0/8"));
        assert!(
            matches!(validate("f2b", "010.0.0.1"), Err(Error::InvalidInput(m)) if m.starts_with("'010.0.0.1' "))
        );
        assert!(matches!(
            validate("F2B", "1.2.3.4"),
            Err(Error::InvalidInput(_))
        ));
    }

    // --- ban

    #[test]
    fn ban_posts_cidr_and_comment() {
        let mut pve = FakePve::answering(200, "OK", r#"{"data":null}"#);
        let result = ban(
            &mut pve,
            &set(),
            &entry("203.0.113.7"),
            "[2026/11/26 01:02:03] sshd",
            "web01",
        );
        assert_eq!(result, Ok("added 203.0.113.7 to IPSet 'f2b'".into()));
        assert_eq!(
            pve.only_call(),
            &call(
                Method::Post,
                "/cluster/firewall/ipset/f2b",
                &[
                    ("cidr", "203.0.113.7"),
                    ("comment", "[2026/11/26 01:02:03] sshd")
                ]
            )
        );
    }

    #[test]
    fn ban_sends_the_canonical_entry() {
        let mut pve = FakePve::answering(200, "OK", r#"{"data":null}"#);
        ban(&mut pve, &set(), &entry("2001:DB8::1/128"), "c", "web01").unwrap();
        assert_eq!(
            pve.only_call().params[0],
            ("cidr".into(), "2001:db8::1".into())
        );
    }

    #[test]
    fn ban_of_an_entry_already_there_is_success() {
        let mut pve = FakePve::answering(400, "Parameter verification failed.", DUPLICATE);
        assert_eq!(
            ban(&mut pve, &set(), &entry("10.0.0.1/8"), "c", "web01"),
            Ok("10.0.0.0/8 was already in IPSet 'f2b'".into())
        );
        // Older servers: no `message`.
        let old = r#"{"data":null,"errors":{"cidr":"address '10.0.0.0/8' already exists"}}"#;
        let mut pve = FakePve::answering(400, "Parameter verification failed.", old);
        assert!(ban(&mut pve, &set(), &entry("10.0.0.0/8"), "c", "web01").is_ok());
    }

    /// Answers each request with the next response, recording the paths.
    struct Script(Vec<Response>, Vec<String>);

    impl Pve for Script {
        fn request(
            &mut self,
            _method: Method,
            path: &str,
            _params: &[(&str, &str)],
        ) -> Result<Response, Error> {
            self.1.push(path.to_string());
            Ok(self.0.remove(0))
        }
    }

    fn already_there_with(comment: Option<&str>) -> (Result<String, Error>, Vec<String>) {
        let data = match comment {
            Some(c) => serde_json::json!({"cidr": "192.0.2.50", "comment": c, "digest": "d"}),
            None => serde_json::json!({"cidr": "192.0.2.50", "digest": "d"}),
        };
        let duplicate = DUPLICATE.replace("10.0.0.0/8", "192.0.2.50");
        let mut pve = Script(
            vec![
                Response {
                    status: 400,
                    reason: "Parameter verification failed.".into(),
                    body: duplicate,
                },
                Response {
                    status: 200,
                    reason: "OK".into(),
                    body: serde_json::json!({ "data": data }).to_string(),
                },
            ],
            Vec::new(),
        );
        let result = ban(&mut pve, &set(), &entry("192.0.2.50"), "c", "web01");
        (result, pve.1)
    }

    #[test]
    fn an_entry_already_there_is_read_once_to_say_whose_it_is() {
        let (result, paths) = already_there_with(Some("manual-by-admin"));
        assert_eq!(
            result.unwrap(),
            "192.0.2.50 was already in IPSet 'f2b' as someone else's entry (comment \
             'manual-by-admin'): not ours, so unbanning it leaves it"
        );
        assert_eq!(
            paths,
            [
                "/cluster/firewall/ipset/f2b",
                "/cluster/firewall/ipset/f2b/192.0.2.50"
            ]
        );
        let (result, _) = already_there_with(Some("[2020/01/01 00:00:00] x f2p:other/sshd/5"));
        assert!(result.unwrap().contains("instance 'other': not ours"));
        let (result, _) = already_there_with(Some("[2020/01/01 00:00:00] x f2p:web01/sshd/5"));
        assert_eq!(
            result.unwrap(),
            "192.0.2.50 was already in IPSet 'f2b' (our entry)"
        );
        let (result, _) = already_there_with(None);
        assert!(result.unwrap().contains("(no comment)"));
    }

    #[test]
    fn ban_refused_for_another_400() {
        let body = r#"{"data":null,"errors":{"cidr":"a zero prefix is not allowed in ipset entries"},"message":"Parameter verification failed.\n"}"#;
        let mut pve = FakePve::answering(400, "Parameter verification failed.", body);
        assert_eq!(
            ban(&mut pve, &set(), &entry("10.0.0.0/8"), "c", "web01"),
            Err(rejected(
                400,
                "Parameter verification failed. (cidr: a zero prefix is not allowed in ipset entries)"
            ))
        );
    }

    #[test]
    fn ban_of_a_missing_ipset_is_refused() {
        let body = r#"{"data":null,"message":"no such IPSet 'f2b'\n"}"#;
        let mut pve = FakePve::answering(500, "no such IPSet 'f2b'", body);
        assert_eq!(
            ban(&mut pve, &set(), &entry("1.2.3.4"), "c", "web01"),
            Err(refused(500, "no such IPSet 'f2b'", Cause::NoSuchIpset))
        );
    }

    #[test]
    fn ban_into_a_full_cluster_fw_is_refused() {
        let reason = "unable to write '/etc/pve/firewall/cluster.fw.tmp.4242' - File too large";
        let mut pve = FakePve::answering(500, reason, r#"{"data":null}"#);
        assert_eq!(
            ban(&mut pve, &set(), &entry("1.2.3.4"), "c", "web01"),
            Err(refused(500, reason, Cause::Capacity))
        );
    }

    #[test]
    fn ban_during_lock_contention_is_busy() {
        let reason = "cfs-lock 'firewall-cluster' error: got lock request timeout";
        let body = format!(r#"{{"data":null,"message":"{reason}\n"}}"#);
        let mut pve = FakePve::answering(500, reason, &body);
        assert_eq!(
            ban(&mut pve, &set(), &entry("1.2.3.4"), "c", "web01"),
            Err(Error::Busy(format!("500 {reason}")))
        );
    }

    #[test]
    fn ban_passes_host_errors_through() {
        for error in [
            Error::Unreachable("connection refused".into()),
            Error::Denied("POST /nodes is not granted".into()),
        ] {
            let mut pve = FakePve::failing(error.clone());
            assert_eq!(
                ban(&mut pve, &set(), &entry("1.2.3.4"), "c", "web01"),
                Err(error)
            );
        }
    }

    // --- unban

    #[test]
    fn unban_deletes_the_exact_entry_with_the_slash_encoded() {
        let mut pve = FakePve::answering(200, "OK", r#"{"data":null}"#);
        assert_eq!(
            unban(&mut pve, &set(), &entry("10.0.0.1/8")),
            Ok("10.0.0.0/8 is not in IPSet 'f2b' any more".into())
        );
        assert_eq!(
            pve.only_call(),
            &call(
                Method::Delete,
                "/cluster/firewall/ipset/f2b/10.0.0.0%2F8",
                &[]
            )
        );
    }

    #[test]
    fn unban_of_an_ipv6_host() {
        let mut pve = FakePve::answering(200, "OK", r#"{"data":null}"#);
        unban(&mut pve, &set(), &entry("2001:DB8:0::1")).unwrap();
        assert_eq!(
            pve.only_call().path,
            "/cluster/firewall/ipset/f2b/2001:db8::1"
        );
    }

    #[test]
    fn unban_errors() {
        let mut pve = FakePve::answering(401, "No ticket", "");
        assert_eq!(
            unban(&mut pve, &set(), &entry("1.2.3.4")),
            Err(refused(401, "No ticket", Cause::Authentication))
        );
        let mut pve = FakePve::failing(Error::Unreachable("timed out".into()));
        assert_eq!(
            unban(&mut pve, &set(), &entry("1.2.3.4")),
            Err(Error::Unreachable("timed out".into()))
        );
    }

    // --- start and check

    #[test]
    fn start_and_check_read_the_ipset() {
        let body =
            r#"{"data":[{"cidr":"1.2.3.4","digest":"x"},{"cidr":"10.0.0.0/8","digest":"x"}]}"#;
        let mut pve = FakePve::answering(200, "OK", body);
        assert_eq!(
            start(&mut pve, &set()),
            Ok("PVE is reachable; IPSet 'f2b' exists with 2 entries".into())
        );
        assert_eq!(
            pve.only_call(),
            &call(Method::Get, "/cluster/firewall/ipset/f2b", &[])
        );

        let mut pve = FakePve::answering(200, "OK", r#"{"data":[]}"#);
        assert_eq!(
            check(&mut pve, &set()),
            Ok("IPSet 'f2b' exists with 0 entries".into())
        );
        let mut pve = FakePve::answering(200, "OK", r#"{"data":[{"cidr":"1.2.3.4"}]}"#);
        assert_eq!(
            check(&mut pve, &set()),
            Ok("IPSet 'f2b' exists with 1 entry".into())
        );
        let mut pve = FakePve::answering(200, "OK", "not json");
        assert_eq!(check(&mut pve, &set()), Ok("IPSet 'f2b' exists".into()));
    }

    #[test]
    fn check_of_a_missing_ipset_is_refused() {
        let body = r#"{"data":null,"message":"no such IPSet 'f2b'\n"}"#;
        let mut pve = FakePve::answering(500, "no such IPSet 'f2b'", body);
        assert_eq!(
            check(&mut pve, &set()),
            Err(refused(500, "no such IPSet 'f2b'", Cause::NoSuchIpset))
        );
    }

    // --- judging error responses

    fn judge(status: u16, reason: &str, body: &str) -> Error {
        pve_error(&Response {
            status,
            reason: reason.into(),
            body: body.into(),
        })
    }

    #[test]
    fn authentication_and_privilege_errors_are_refused() {
        assert_eq!(
            judge(401, "No ticket", ""),
            refused(401, "No ticket", Cause::Authentication)
        );
        assert_eq!(
            judge(401, "Authentication failed!", ""),
            refused(401, "Authentication failed!", Cause::Authentication)
        );
        let body = r#"{"data":null,"message":"Permission check failed (/, Sys.Modify)\n"}"#;
        assert_eq!(
            judge(403, "Permission check failed (/, Sys.Modify)", body),
            refused(
                403,
                "Permission check failed (/, Sys.Modify)",
                Cause::Permission
            )
        );
    }

    #[test]
    fn server_errors_other_than_lasting_ones_are_busy() {
        assert_eq!(
            judge(
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
            judge(500, "cfs-lock 'firewall-cluster' error: no quorum!", ""),
            Error::Busy("500 cfs-lock 'firewall-cluster' error: no quorum!".into())
        );
        assert_eq!(
            judge(502, "Bad Gateway", ""),
            Error::Busy("502 Bad Gateway".into())
        );
        assert_eq!(
            judge(503, "Service Unavailable", ""),
            Error::Busy("503 Service Unavailable".into())
        );
        assert_eq!(judge(504, "", ""), Error::Busy("504 HTTP 504".into()));
    }

    #[test]
    fn other_client_errors_are_rejected_or_refused() {
        assert_eq!(
            judge(
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
            judge(506, "", "unable to parse request header\n"),
            refused(506, "unable to parse request header", Cause::Other)
        );
        assert_eq!(
            judge(404, "Not Found", ""),
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
    fn a_400_for_another_address_is_not_a_duplicate() {
        let body = r#"{"data":null,"errors":{"comment":"address 'x' already exists"}}"#;
        let mut pve = FakePve::answering(400, "Parameter verification failed.", body);
        assert!(matches!(
            ban(&mut pve, &set(), &entry("1.2.3.4"), "c", "web01"),
            Err(Error::Rejected { status: 400, .. })
        ));
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
                Method::Post,
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
            describe_call(Method::Get, "/cluster/firewall/ipset/f2b", &[], &err),
            "GET /cluster/firewall/ipset/f2b -> PVE unreachable: timed out"
        );
    }

    #[test]
    fn list_reads_entries_with_comments() {
        let body = r#"{"data":[{"cidr":"10.0.0.0/8","digest":"x"},{"cidr":"192.0.2.1","comment":"by hand","digest":"x"}]}"#;
        let mut pve = FakePve::answering(200, "OK", body);
        let ipset = IpsetName::new("f2b").unwrap();
        let listed = list(&mut pve, &ipset).unwrap();
        assert_eq!(
            listed,
            [
                Listed {
                    cidr: "10.0.0.0/8".into(),
                    comment: None
                },
                Listed {
                    cidr: "192.0.2.1".into(),
                    comment: Some("by hand".into())
                },
            ]
        );
        let call = pve.only_call();
        assert_eq!(
            (call.method, call.path.as_str()),
            (Method::Get, "/cluster/firewall/ipset/f2b")
        );
    }

    #[test]
    fn list_of_a_missing_ipset_is_refused() {
        let mut pve = FakePve::answering(500, "no such IPSet 'f2b'", r#"{"data":null}"#);
        let ipset = IpsetName::new("f2b").unwrap();
        assert!(matches!(
            list(&mut pve, &ipset),
            Err(Error::Refused { status: 500, .. })
        ));
    }
}
