//! One TLS connection: reading request heads and bodies, the server-level
//! checks of §5 step 2, keep-alive (§13) and the response writer, which
//! puts PVE's message into the status line's reason phrase (§6).

use crate::state::Shared;
use crate::wire::{Head, Recorded, Response};
use crate::{clock, pipeline};
use rustls::{ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// pveproxy's idle timeout on a connection.
const IDLE: Duration = Duration::from_secs(5);
/// Requests served on one connection before it is closed (`keep_alive => 100`).
const MAX_REQUESTS: usize = 100;
/// Beyond these the server logs a warning and never answers (§5 step 2).
const MAX_HEAD_BYTES: usize = 8 * 1024;
const MAX_HEADERS: usize = 64;

type Tls = StreamOwned<ServerConnection, TcpStream>;

/// The response, the head if it parsed, and the decoded parameters.
type Processed = (Response, Option<Head>, Vec<(String, String)>);

enum ReadHead {
    /// Length of the head including the blank line.
    Head(usize),
    Closed,
    TooLarge,
}

pub(crate) fn serve(shared: &Arc<Shared>, sock: TcpStream) {
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_read_timeout(Some(IDLE));
    let _ = sock.set_write_timeout(Some(Duration::from_secs(10)));
    let _ = sock.set_nodelay(true);
    let Ok(conn) = ServerConnection::new(shared.tls.clone()) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            return; // the client refused the certificate, or went away
        }
    }
    let mut buf = Vec::new();
    for served in 1.. {
        let len = match read_head(&mut tls, &mut buf) {
            ReadHead::Head(n) => n,
            ReadHead::Closed => return,
            ReadHead::TooLarge => return linger(&mut tls),
        };
        let raw: Vec<u8> = buf.drain(..len).collect();
        let Some((response, head, params)) = process(shared, &raw, &mut tls, &mut buf) else {
            return linger(&mut tls);
        };
        let keep_alive = response.status < 400
            && served < MAX_REQUESTS
            && head.as_ref().is_some_and(wants_keep_alive);
        record(shared, &raw, head.as_ref(), params, &response);
        if write_response(&mut tls, &response, keep_alive).is_err() || !keep_alive {
            return close(tls);
        }
    }
}

/// HTTP/1.1 keeps the connection unless the client says close; HTTP/1.0
/// only with `Connection: keep-alive`.
fn wants_keep_alive(head: &Head) -> bool {
    let conn = head.header("Connection").unwrap_or("").to_ascii_lowercase();
    if head.minor == 0 {
        conn.contains("keep-alive")
    } else {
        !conn.contains("close")
    }
}

/// Parses a head and runs the pipeline; `None` means "never answer" (too
/// many header lines). Returns the head when it could be parsed.
fn process(shared: &Shared, raw: &[u8], tls: &mut Tls, buf: &mut Vec<u8>) -> Option<Processed> {
    let head = match parse_head(raw) {
        Ok(h) => h,
        Err(None) => return None,
        Err(Some(resp)) => return Some((resp, None, Vec::new())),
    };
    if !matches!(head.method.as_str(), "GET" | "POST" | "PUT" | "DELETE") {
        let resp = Response::text(501, &format!("method '{}' not available", head.method));
        return Some((resp, Some(head), Vec::new()));
    }
    if head
        .header("Transfer-Encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        let resp = Response::text(501, "chunked transfer encoding not supported");
        return Some((resp, Some(head), Vec::new()));
    }
    let admitted = match pipeline::before_body(shared, &head) {
        Ok(admitted) => admitted,
        Err(resp) => return Some((resp, Some(head), Vec::new())),
    };
    let body = match read_body(tls, buf, head.content_length()) {
        Some(b) => b,
        None => {
            return Some((
                Response::text(400, "incomplete body"),
                Some(head),
                Vec::new(),
            ));
        }
    };
    let (resp, params) = pipeline::handle(shared, &head, admitted, &body);
    Some((resp, Some(head), params))
}

/// `Err(None)`: too many headers, answer nothing; `Err(Some(_))`: a response.
fn parse_head(raw: &[u8]) -> Result<Head, Option<Response>> {
    let line_end = raw
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(raw.len());
    let line = String::from_utf8_lossy(&raw[..line_end]);
    let parts: Vec<&str> = line.split_ascii_whitespace().collect();
    let bad = || Some(Response::text(400, "bad request"));
    let [method, target, version] = parts[..] else {
        return Err(bad());
    };
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => return Err(bad()),
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let rest = &raw[(line_end + 2).min(raw.len())..];
    let parsed = match httparse::parse_headers(rest, &mut headers) {
        Ok(httparse::Status::Complete((_, h))) => h,
        Err(httparse::Error::TooManyHeaders) => return Err(None),
        _ => return Err(Some(Response::text(506, "unable to parse request header"))),
    };
    let headers = parsed
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Ok(Head {
        method: method.into(),
        target: target.into(),
        minor,
        headers,
    })
}

fn read_more(tls: &mut Tls, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match tls.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn read_head(tls: &mut Tls, buf: &mut Vec<u8>) -> ReadHead {
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return if pos + 4 > MAX_HEAD_BYTES {
                ReadHead::TooLarge
            } else {
                ReadHead::Head(pos + 4)
            };
        }
        if buf.len() > MAX_HEAD_BYTES {
            return ReadHead::TooLarge;
        }
        if !read_more(tls, buf) {
            return ReadHead::Closed;
        }
    }
}

fn read_body(tls: &mut Tls, buf: &mut Vec<u8>, len: usize) -> Option<Vec<u8>> {
    while buf.len() < len {
        if !read_more(tls, buf) {
            return None;
        }
    }
    Some(buf.drain(..len).collect())
}

fn record(
    shared: &Shared,
    raw: &[u8],
    head: Option<&Head>,
    params: Vec<(String, String)>,
    resp: &Response,
) {
    let (method, path) = match head {
        Some(h) => (h.method.clone(), h.target.clone()),
        None => {
            let line = String::from_utf8_lossy(raw)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            let mut it = line.split_ascii_whitespace();
            (
                it.next().unwrap_or("").to_string(),
                it.next().unwrap_or("").to_string(),
            )
        }
    };
    if shared.log_requests {
        eprintln!("{method} {path} -> {} {}", resp.status, resp.reason);
    }
    let authorization = head.is_some_and(|h| h.header("Authorization").is_some());
    let rec = Recorded {
        method,
        path,
        params,
        authorization,
        status: resp.status,
        at: std::time::Instant::now(),
    };
    shared.requests.lock().unwrap().push(rec);
}

/// Status line with PVE's reason phrase, then pveproxy's headers (§13).
fn write_response(tls: &mut Tls, resp: &Response, keep_alive: bool) -> std::io::Result<()> {
    let date = clock::http_now();
    let reason: String = resp
        .reason
        .chars()
        .filter(|c| *c != '\r' && *c != '\n')
        .collect();
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", resp.status);
    out += "Cache-Control: max-age=0\r\n";
    out += if keep_alive {
        "Connection: Keep-Alive\r\n"
    } else {
        "Connection: close\r\n"
    };
    out += &format!("Date: {date}\r\nPragma: no-cache\r\nServer: pve-api-daemon/3.0\r\n");
    if resp.json {
        out += "Content-Type: application/json;charset=UTF-8\r\n";
    }
    out += &format!(
        "Content-Length: {}\r\nExpires: {date}\r\n\r\n",
        resp.body.len()
    );
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&resp.body);
    tls.write_all(&bytes)?;
    tls.flush()
}

/// Ends the TLS session and lets the client read the last response before
/// the socket goes: unread input at close time would turn into a reset.
fn close(mut tls: Tls) {
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.sock.shutdown(Shutdown::Write);
    let _ = tls.sock.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    for _ in 0..256 {
        if !matches!(tls.sock.read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
}

/// The "no answer at all" case: wait for the client or the idle timeout.
fn linger(tls: &mut Tls) {
    let mut sink = [0u8; 4096];
    while matches!(tls.read(&mut sink), Ok(n) if n > 0) {}
}
