//! `/metrics` on `[metrics] listen`: the Prometheus exposition of
//! `fail2pvefw status --prometheus`, served on a loopback address only (it
//! names the IPSet and the queue; it never holds the token).

use super::intake::Job;
use crate::commands::local_api::{ApiRequest, Op};
use crate::error::{Failure, Result};
use crate::log;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// `[metrics] listen`, which must be a loopback address and port (exit 3
/// otherwise).
pub fn address(listen: &str) -> Result<SocketAddr> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        Failure::config(format!(
            "[metrics] listen = '{listen}': give a loopback address and port, e.g. \"127.0.0.1:9712\""
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(Failure::config(format!(
            "[metrics] listen = '{listen}' is not a loopback address: /metrics is served on 127.0.0.1 or [::1] only"
        ))
        .hint("Scrape it through the node exporter's textfile ([metrics] textfile) or a local proxy."));
    }
    Ok(addr)
}

pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| Failure::config(format!("[metrics] listen = '{addr}': {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Failure::config(format!("[metrics] listen = '{addr}': {e}")))?;
    Ok(listener)
}

/// Serves until `stop`, one request at a time.
pub fn serve(listener: TcpListener, jobs: mpsc::Sender<Job>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, &jobs) {
                    log::debug(&format!("serve: /metrics: {e}"));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => log::debug(&format!("serve: /metrics accept: {e}")),
        }
    }
}

fn answer(stream: TcpStream, jobs: &mpsc::Sender<Job>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(&stream);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    // The rest of the head.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("");
    let (status, body) =
        if first.starts_with("GET ") && (path == "/metrics" || path.starts_with("/metrics?")) {
            let (reply, answer) = mpsc::channel();
            let request = ApiRequest {
                op: Op::Status {
                    ipset: None,
                    json: false,
                    prometheus: true,
                },
                config: None,
            };
            jobs.send(Job::Api { request, reply })
                .map_err(|_| std::io::Error::other("the service stops"))?;
            match answer.recv() {
                Ok(a) if a.ok => ("200 OK", format!("{}\n", a.message)),
                Ok(a) => ("503 Service Unavailable", format!("{}\n", a.message)),
                Err(_) => ("503 Service Unavailable", "the service stops\n".into()),
            }
        } else {
            ("404 Not Found", "only /metrics here\n".into())
        };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = &stream;
    out.write_all(head.as_bytes())?;
    out.write_all(body.as_bytes())
}
