//! A request head as read off the connection, and a response as it goes
//! back on it.

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

    /// A 401: no body at all (§9).
    pub fn unauthorized(reason: &str) -> Response {
        Response {
            status: 401,
            reason: reason.into(),
            body: Vec::new(),
            json: false,
        }
    }
}

impl From<pve_model::Response> for Response {
    /// What the API formatter answered: always JSON.
    fn from(r: pve_model::Response) -> Response {
        Response {
            status: r.status,
            reason: r.reason,
            body: r.body.into_bytes(),
            json: true,
        }
    }
}

/// One request that got past the TLS handshake and was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// The request target as sent, query string included, not decoded.
    pub path: String,
    /// Query and body parameters, decoded, in the order sent (query last);
    /// empty when the request was refused before they were read.
    pub params: Vec<(String, String)>,
    /// Whether an `Authorization` header was present at all.
    pub authorization: bool,
    pub status: u16,
    /// When the answer was written (a write-rate check reads it).
    pub at: std::time::Instant,
}
