//! The listener and its accept thread.
//! Pausing really closes the listening socket so that clients see
//! "connection refused", the way a stopped pveproxy looks.

use crate::http;
use crate::state::Shared;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub(crate) struct Server {
    addr: SocketAddr,
    listener: Arc<Mutex<Option<TcpListener>>>,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    // Retried briefly: after a pause the old socket may linger a moment.
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => {
                l.set_nonblocking(true)?;
                return Ok(l);
            }
            Err(_) if tries < 50 => tries += 1,
            Err(e) => return Err(e),
        }
        thread::sleep(Duration::from_millis(20));
    }
}

impl Server {
    pub fn start(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<Server> {
        let listener = bind(addr)?;
        let addr = listener.local_addr().expect("local_addr");
        let listener = Arc::new(Mutex::new(Some(listener)));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (listener, stop, shared) = (listener.clone(), stop.clone(), shared.clone());
            thread::spawn(move || accept_loop(&listener, &stop, &shared))
        };
        Ok(Server {
            addr,
            listener,
            stop,
            shared,
            accept: Some(accept),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pause(&self) {
        self.listener.lock().unwrap().take();
        self.shared.shutdown_all();
    }

    pub fn resume(&self) {
        let mut l = self.listener.lock().unwrap();
        if l.is_none() {
            let listener = bind(self.addr);
            *l = Some(listener.unwrap_or_else(|e| {
                panic!("pve-emulator: cannot listen on {} again: {e}", self.addr)
            }));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.pause();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Polls the non-blocking listener so that pause and stop need no wake-up
/// trick; 5 ms of latency per connect is nothing next to a TLS handshake.
fn accept_loop(listener: &Mutex<Option<TcpListener>>, stop: &AtomicBool, shared: &Arc<Shared>) {
    while !stop.load(Ordering::SeqCst) {
        // Tracked while the listener lock is held, so a concurrent pause
        // cannot miss a connection accepted just before it.
        let accepted = match listener.lock().unwrap().as_ref() {
            Some(l) => l.accept().ok().map(|(sock, _)| {
                let guard = shared.track(&sock);
                (sock, guard)
            }),
            None => None,
        };
        match accepted {
            Some((sock, guard)) => {
                let shared = shared.clone();
                thread::spawn(move || {
                    let _guard = guard;
                    http::serve(&shared, sock);
                });
            }
            None => thread::sleep(Duration::from_millis(5)),
        }
    }
}
