//! The CrowdSec Local API, as a bouncer uses it: the decision stream, and
//! two checks that leave the bouncer's place in the stream alone.
//!
//! `GET /v1/decisions/stream?startup=true|false` with `X-Api-Key` answers
//! `{"new": [...], "deleted": [...]}`, either list `null` or `[]`, with a
//! Content-Length or chunked. A wrong, missing or revoked key is `403`.
//! The LAPI moves the bouncer's `last_pull` on every stream request (HEAD
//! too) and on a `GET /v1/decisions` with the key, so the checks are
//! `GET /health` (no key) and `HEAD /v1/decisions?ip=127.0.0.1` (the key,
//! and no side effect). The key is sent marked sensitive and never shown.

use super::tls::{self, Seen};
use crate::config::{CrowdSec, Trust};
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::io::Read;
use std::time::Duration;

/// CrowdSec's bouncer spec: `crowdsec-<service>-bouncer/v<x.y.z>`; the LAPI
/// shows it in `cscli bouncers list`.
pub const USER_AGENT: &str = concat!("crowdsec-fail2pvefw-bouncer/v", env!("CARGO_PKG_VERSION"));
/// 100,000 decisions are about 15 MB.
const MAX_BODY: u64 = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const PULL_TIMEOUT: Duration = Duration::from_secs(60);

/// One decision as the stream lists it (1.4.6's fields; others are ignored).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Decision {
    #[serde(default)]
    pub id: i64,
    pub value: String,
    pub scope: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Time left, Go syntax (`3h59m59.29s`, `-136ms`).
    pub duration: String,
    #[serde(default)]
    pub origin: String,
    #[serde(default)]
    pub scenario: String,
}

/// A stream answer.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct Stream {
    #[serde(default, deserialize_with = "null_is_empty")]
    pub new: Vec<Decision>,
    #[serde(default, deserialize_with = "null_is_empty")]
    pub deleted: Vec<Decision>,
}

fn null_is_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Decision>, D::Error> {
    Ok(Option::<Vec<Decision>>::deserialize(d)?.unwrap_or_default())
}

/// Why the LAPI gave no answer to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LapiError {
    /// No connection, a timeout, a TLS failure.
    Unreachable(String),
    /// 403: the key is wrong, missing or revoked (a new LAPI database
    /// revokes every key); the three cannot be told apart.
    Forbidden,
    /// Another status.
    Status(u16, String),
    /// An answer that is not a stream.
    Malformed(String),
}

impl LapiError {
    /// Words for the log and `status`; never the key.
    pub fn describe(&self, url: &str) -> String {
        match self {
            LapiError::Unreachable(why) => {
                format!("the CrowdSec LAPI at {url} is unreachable: {why}")
            }
            LapiError::Forbidden => format!(
                "the CrowdSec LAPI at {url} refused the bouncer key (403): it is wrong or was revoked \
                 (a new LAPI database revokes it too)"
            ),
            LapiError::Status(status, body) => {
                format!("the CrowdSec LAPI at {url} answered {status}: {body}")
            }
            LapiError::Malformed(why) => {
                format!(
                    "the CrowdSec LAPI at {url} sent something that is not a decision stream: {why}"
                )
            }
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            LapiError::Forbidden => {
                "Create a key with `cscli bouncers add fail2pvefw` and put it into [crowdsec] api_key_file \
                 (mode 0600); entries already in PVE stay meanwhile."
            }
            _ => {
                "Check [crowdsec] url and that the LAPI runs (`systemctl status crowdsec`); entries \
                 already in PVE stay meanwhile, and the bouncer retries with back-off."
            }
        }
    }
}

pub struct Lapi {
    http: reqwest::blocking::Client,
    url: String,
    key: HeaderValue,
    query: String,
}

impl Lapi {
    pub fn new(config: &CrowdSec) -> Result<Lapi, String> {
        let trust = match &config.ca_file {
            Some(ca) => Trust::CaFile(ca.clone()),
            None => Trust::SystemRoots,
        };
        let tls = tls::client_config(&trust, &[], &Seen::default())?;
        let http = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls)
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(PULL_TIMEOUT)
            .pool_max_idle_per_host(1)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| format!("cannot set up the LAPI client: {e}"))?;
        let mut key = HeaderValue::from_str(config.key.expose()).map_err(|_| {
            "the bouncer key holds characters an HTTP header cannot carry".to_string()
        })?;
        key.set_sensitive(true);
        Ok(Lapi {
            http,
            url: config.url.clone(),
            key,
            query: query(config),
        })
    }

    /// The stream: everything (`startup`) or what changed since the last pull.
    pub fn pull(&self, startup: bool) -> Result<Stream, LapiError> {
        let url = format!(
            "{}v1/decisions/stream?startup={startup}{}",
            self.url, self.query
        );
        let response = self.send(self.http.get(&url).header(api_key(), self.key.clone()))?;
        let status = response.status().as_u16();
        let body = read(response)?;
        match status {
            200 => serde_json::from_slice(&body).map_err(|e| LapiError::Malformed(e.to_string())),
            403 => Err(LapiError::Forbidden),
            other => Err(LapiError::Status(other, short(&body))),
        }
    }

    /// `GET /health`: is a LAPI there (no key needed).
    pub fn health(&self) -> Result<(), LapiError> {
        let response = self.send(self.http.get(format!("{}health", self.url)))?;
        let status = response.status().as_u16();
        let body = read(response)?;
        match status {
            200 => Ok(()),
            other => Err(LapiError::Status(other, short(&body))),
        }
    }

    /// `HEAD /v1/decisions?ip=127.0.0.1`: is the key valid. Unlike the
    /// stream or a GET, it leaves the bouncer's `last_pull` alone.
    pub fn check_key(&self) -> Result<(), LapiError> {
        let url = format!("{}v1/decisions?ip=127.0.0.1", self.url);
        let response = self.send(self.http.head(url).header(api_key(), self.key.clone()))?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            403 => Err(LapiError::Forbidden),
            other => Err(LapiError::Status(other, String::new())),
        }
    }

    fn send(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response, LapiError> {
        request
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .map_err(|e| LapiError::Unreachable(cause(&e)))
    }
}

fn api_key() -> HeaderName {
    HeaderName::from_static("x-api-key")
}

/// The filters as the LAPI takes them: comma-joined; `type` only when one
/// type is wanted (the LAPI takes one), else the bouncer filters itself.
pub fn query(config: &CrowdSec) -> String {
    let mut out = String::new();
    let mut add = |name: &str, list: &[String]| {
        if !list.is_empty() {
            out.push_str(&format!("&{name}={}", list.join(",")));
        }
    };
    add("scopes", &config.scopes);
    add("origins", &config.origins);
    add("scenarios_containing", &config.scenarios_containing);
    add("scenarios_not_containing", &config.scenarios_not_containing);
    if let [one] = config.types.as_slice() {
        out.push_str(&format!("&type={one}"));
    }
    out
}

fn read(response: reqwest::blocking::Response) -> Result<Vec<u8>, LapiError> {
    let mut body = Vec::new();
    response
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .map_err(|e| LapiError::Unreachable(format!("the answer broke off: {e}")))?;
    if body.len() as u64 > MAX_BODY {
        return Err(LapiError::Malformed(format!(
            "the answer is over {} MiB",
            MAX_BODY >> 20
        )));
    }
    Ok(body)
}

/// The start of a body, one line, for a message.
fn short(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    crate::log::sanitize(&text).chars().take(200).collect()
}

fn cause(err: &reqwest::Error) -> String {
    let mut current: &dyn std::error::Error = err;
    while let Some(next) = current.source() {
        current = next;
    }
    if err.is_timeout() {
        return format!("no answer in time ({current})");
    }
    current.to_string()
}

/// Seconds in a Go duration as the LAPI prints it (`3h59m59.29s`,
/// `-136.28ms`, `1m0s`, `500µs`); `None` when it is not one.
pub fn go_duration_secs(s: &str) -> Option<f64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let number: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Some(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_parse_with_null_or_empty_lists() {
        let s: Stream = serde_json::from_str(r#"{"deleted":null,"new":null}"#).unwrap();
        assert_eq!(s, Stream::default());
        let s: Stream = serde_json::from_str(r#"{"new": [], "deleted": []}"#).unwrap();
        assert_eq!(s, Stream::default());
        let s: Stream = serde_json::from_str(
            r#"{"deleted":[{"duration":"-136.282323ms","id":1,"origin":"cscli","scenario":"r1","scope":"Ip","type":"ban","value":"192.0.2.1"}],
                "new":[{"duration":"1h59m59.5640036s","id":4,"origin":"cscli","scenario":"r9","scope":"Ip","type":"ban","value":"192.0.2.9","uuid":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(s.deleted[0].value, "192.0.2.1");
        assert_eq!(s.new[0].kind, "ban");
        assert_eq!(s.new[0].id, 4);
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(go_duration_secs("4h"), Some(14_400.0));
        assert_eq!(go_duration_secs("1m0s"), Some(60.0));
        let d = go_duration_secs("3h59m59.29s").unwrap();
        assert!((d - 14_399.29).abs() < 1e-6);
        assert!(go_duration_secs("-136.282323ms").unwrap() < 0.0);
        assert!(go_duration_secs("500µs").unwrap() > 0.0);
        assert_eq!(go_duration_secs("1d"), None);
        assert_eq!(go_duration_secs(""), None);
    }

    #[test]
    fn the_query_sends_one_type_only() {
        let text = "[pve]\nhost = \"h\"\ntoken = \"a@pve!tt=x1234567\"\n[crowdsec]\napi_key = \"k\"\norigins = [\"cscli\", \"crowdsec\"]\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let config = crate::config::Config::load(&path).unwrap();
        let mut cs = config.crowdsec.unwrap();
        assert_eq!(
            query(&cs),
            "&scopes=ip,range&origins=cscli,crowdsec&type=ban"
        );
        cs.types = vec!["ban".into(), "captcha".into()];
        assert_eq!(query(&cs), "&scopes=ip,range&origins=cscli,crowdsec");
    }
}
