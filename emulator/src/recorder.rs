//! A bare TLS listener with its own self-signed certificate (CN
//! `recorder.invalid`), for proving that a client sends nothing — no
//! request, no token — to a server whose certificate it should refuse.
//!
//! It completes every handshake the client lets complete, records all the
//! plaintext it receives afterwards, and answers each request head with a
//! useless `503 recorder` before closing.
//!
//! ```no_run
//! let rec = pve_emulator::recorder::Recorder::start();
//! // run the client against rec.host_port() with some other pinned fingerprint…
//! assert!(rec.received().is_empty());
//! assert_eq!(rec.handshakes(), 0);
//! ```

use crate::tls::{self, Identity};
use rustls::{ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Seen {
    received: Mutex<Vec<u8>>,
    handshakes: AtomicUsize,
    connections: AtomicUsize,
}

/// A running recorder; dropping it stops the accept thread.
pub struct Recorder {
    addr: SocketAddr,
    identity: Identity,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Listens on `127.0.0.1:0`.
    pub fn start() -> Recorder {
        let identity = Identity::self_signed_named("recorder.invalid");
        let config = tls::server_config(&identity);
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind recorder");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (seen, stop) = (seen.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((sock, _)) => {
                            seen.connections.fetch_add(1, Ordering::SeqCst);
                            let (seen, config) = (seen.clone(), config.clone());
                            thread::spawn(move || serve(sock, config, &seen));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Recorder {
            addr,
            identity,
            seen,
            stop,
            accept: Some(accept),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `"127.0.0.1:PORT"`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Its certificate's SHA-256 fingerprint, `AA:BB:…`.
    pub fn fingerprint(&self) -> String {
        tls::fingerprint(&self.identity.leaf_der)
    }

    /// Its (self-signed) certificate in PEM.
    pub fn cert_pem(&self) -> String {
        self.identity.ca_pem.clone()
    }

    /// Every plaintext byte received after a handshake, all connections.
    pub fn received(&self) -> Vec<u8> {
        self.seen.received.lock().unwrap().clone()
    }

    /// Handshakes that completed (the client accepted the certificate).
    pub fn handshakes(&self) -> usize {
        self.seen.handshakes.load(Ordering::SeqCst)
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve(sock: TcpStream, config: Arc<rustls::ServerConfig>, seen: &Seen) {
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, sock);
    let deadline = Instant::now() + Duration::from_secs(5);
    while tls.conn.is_handshaking() {
        match tls.conn.complete_io(&mut tls.sock) {
            Ok(_) => {}
            Err(e) if is_timeout(&e) && Instant::now() < deadline => {}
            Err(_) => return,
        }
    }
    seen.handshakes.fetch_add(1, Ordering::SeqCst);
    let mut mine = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match tls.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                seen.received.lock().unwrap().extend_from_slice(&chunk[..n]);
                mine.extend_from_slice(&chunk[..n]);
            }
            // A quiet moment after a complete head: answer and hang up.
            Err(e) if is_timeout(&e) => {
                if mine.windows(4).any(|w| w == b"\r\n\r\n") {
                    let _ = tls.write_all(
                        b"HTTP/1.1 503 recorder\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
