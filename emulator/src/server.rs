//! The listener, its accept thread and the state shared by all connections.
//! Pausing really closes the listening socket so that clients see
//! "connection refused", the way a stopped pveproxy looks.

use crate::firewall::{Conf, FileEntry, IpSet};
use crate::{Fault, Options, Recorded, Token, http, tls};
use std::collections::{HashMap, VecDeque};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Everything a connection thread needs.
pub(crate) struct Shared {
    pub tokens: Mutex<Vec<Token>>,
    pub auth_delay: Duration,
    pub legacy_errors: bool,
    pub max_file_size: usize,
    pub version: String,
    pub log_requests: bool,
    /// `cluster.fw`, the single source of truth (§7).
    pub file: Mutex<String>,
    /// The cfs lock `firewall-cluster` (§8.2): held for a whole write.
    pub write_lock: Mutex<()>,
    pub faults: Mutex<VecDeque<Fault>>,
    pub writes: AtomicUsize,
    pub requests: Mutex<Vec<Recorded>>,
    pub identity: tls::Identity,
    pub tls: Arc<rustls::ServerConfig>,
    /// Open connections, so that pause and drop can shut them down.
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
}

impl Shared {
    pub fn new(opts: &Options) -> Shared {
        let identity = tls::Identity::generate(&opts.tls);
        let tls = tls::server_config(&identity);
        let file = match &opts.cluster_fw {
            Some(text) => text.clone(),
            None => initial_conf(opts).serialise(),
        };
        Shared {
            tokens: Mutex::new(opts.tokens.clone()),
            auth_delay: opts.auth_delay,
            legacy_errors: opts.legacy_errors,
            max_file_size: opts.max_file_size,
            version: opts.version.clone(),
            log_requests: opts.log_requests,
            file: Mutex::new(file),
            write_lock: Mutex::new(()),
            faults: Mutex::new(VecDeque::new()),
            writes: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            identity,
            tls,
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
        }
    }

    /// A fresh parse of `cluster.fw`, as every PVE request does (§8.1).
    pub fn conf(&self) -> Conf {
        Conf::parse(&self.file.lock().unwrap())
    }

    /// Registers a connection; the returned guard unregisters it.
    pub fn track(self: &Arc<Self>, sock: &TcpStream) -> ConnGuard {
        let id = self.next_conn.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = sock.try_clone() {
            self.conns.lock().unwrap().insert(id, clone);
        }
        ConnGuard {
            shared: self.clone(),
            id,
        }
    }

    fn shutdown_all(&self) {
        for (_, sock) in self.conns.lock().unwrap().drain() {
            let _ = sock.shutdown(Shutdown::Both);
        }
    }
}

pub(crate) struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.conns.lock().unwrap().remove(&self.id);
    }
}

fn initial_conf(opts: &Options) -> Conf {
    let mut conf = Conf::default();
    if let Some(on) = opts.firewall_enable {
        conf.options.push(format!("enable: {}", u8::from(on)));
    }
    conf.rules = opts.rules.clone();
    for (name, cidr) in &opts.aliases {
        conf.aliases.insert(name.clone(), (cidr.clone(), None));
    }
    for (name, entries) in &opts.ipsets {
        let entries = entries
            .iter()
            .map(|(cidr, comment)| FileEntry {
                cidr: cidr.strip_prefix('!').unwrap_or(cidr).to_string(),
                comment: comment.clone(),
                nomatch: cidr.starts_with('!'),
                error: None,
            })
            .collect();
        conf.ipsets.insert(
            name.clone(),
            IpSet {
                comment: None,
                entries,
            },
        );
    }
    conf
}

pub(crate) struct Server {
    addr: SocketAddr,
    listener: Arc<Mutex<Option<TcpListener>>>,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

fn bind(addr: SocketAddr) -> TcpListener {
    // Retried briefly: after a pause the old socket may linger a moment.
    for _ in 0..50 {
        if let Ok(l) = TcpListener::bind(addr) {
            l.set_nonblocking(true).expect("set_nonblocking");
            return l;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("pve-emulator: cannot listen on {addr}");
}

impl Server {
    pub fn start(addr: SocketAddr, shared: Arc<Shared>) -> Server {
        let listener = bind(addr);
        let addr = listener.local_addr().expect("local_addr");
        let listener = Arc::new(Mutex::new(Some(listener)));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (listener, stop, shared) = (listener.clone(), stop.clone(), shared.clone());
            thread::spawn(move || accept_loop(&listener, &stop, &shared))
        };
        Server {
            addr,
            listener,
            stop,
            shared,
            accept: Some(accept),
        }
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
            *l = Some(bind(self.addr));
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
