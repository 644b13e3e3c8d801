//! The state every connection shares: tokens, the cluster (the model,
//! behind a mutex), the cfs lock, injected faults, the recorder of
//! requests, the TLS identity and the open connections.

use crate::options::{Fault, Options, Token};
use crate::tls;
use crate::wire::Recorded;
use pve_model::Cluster;
use pve_model::clusterfw::{Alias, Conf, Entry, IpSet, Rule};
use std::collections::{HashMap, VecDeque};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) struct Shared {
    pub tokens: Mutex<Vec<Token>>,
    pub auth_delay: Duration,
    pub log_requests: bool,
    /// `cluster.fw` and the API over it (§2, §7).
    cluster: Mutex<Cluster>,
    /// Where `cluster.fw` is kept, if on disk (`--cluster-fw`).
    file: Option<PathBuf>,
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
    /// Fails only when `cluster_fw_file` exists but cannot be read, or
    /// cannot be created.
    pub fn new(opts: &Options) -> Result<Shared, String> {
        let identity = tls::Identity::generate(&opts.tls);
        let tls = tls::server_config(&identity);
        let on_disk = match &opts.cluster_fw_file {
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            },
            None => None,
        };
        let created = on_disk.is_none();
        let text = match (on_disk, &opts.cluster_fw) {
            (Some(bytes), _) => bytes,
            (None, Some(text)) => text.clone().into_bytes(),
            (None, None) => initial_conf(opts)
                .write()
                .expect("Options.rules of a known type"),
        };
        let cluster = Cluster::from_cluster_fw(text)
            .legacy_errors(opts.legacy_errors)
            .max_file_size(opts.max_file_size)
            .worker_pid(std::process::id())
            .version(&opts.version);
        if let (Some(path), true) = (&opts.cluster_fw_file, created) {
            write_atomically(path, cluster.cluster_fw())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(Shared {
            tokens: Mutex::new(opts.tokens.clone()),
            auth_delay: opts.auth_delay,
            log_requests: opts.log_requests,
            cluster: Mutex::new(cluster),
            file: opts.cluster_fw_file.clone(),
            write_lock: Mutex::new(()),
            faults: Mutex::new(VecDeque::new()),
            writes: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            identity,
            tls,
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
        })
    }

    /// The cluster, its clock set to now.
    pub fn cluster(&self) -> MutexGuard<'_, Cluster> {
        let mut cluster = self.cluster.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now().duration_since(UNIX_EPOCH);
        cluster.set_time(now.map_or(0, |d| d.as_secs()));
        cluster
    }

    /// After a write: rewrites the file whole, as a node does, when
    /// `cluster.fw` lives on disk. Called with the cfs lock held.
    pub fn persist(&self, text: &[u8]) {
        if let Some(path) = &self.file
            && let Err(e) = write_atomically(path, text)
        {
            eprintln!("pve-emulator: cannot write {}: {e}", path.display());
        }
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

    pub fn shutdown_all(&self) {
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

/// `PVE::Tools::file_set_contents`: a temporary file beside it, then a
/// rename; no content means PVE deletes the file.
fn write_atomically(path: &std::path::Path, text: &[u8]) -> std::io::Result<()> {
    if text.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The `cluster.fw` that [`Options`] describe, as PVE would write it.
fn initial_conf(opts: &Options) -> Conf {
    let mut conf = Conf::default();
    if let Some(on) = opts.firewall_enable {
        conf.options
            .insert("enable".into(), u8::from(on).to_string());
    }
    conf.rules = opts.rules.iter().filter_map(|l| Rule::parse(l)).collect();
    for (name, cidr) in &opts.aliases {
        let alias = Alias {
            name: name.clone(),
            cidr: cidr.clone(),
            comment: None,
        };
        conf.aliases.insert(name.to_ascii_lowercase(), alias);
    }
    for (name, entries) in &opts.ipsets {
        let entries = entries
            .iter()
            .map(|(cidr, comment)| {
                let (nomatch, cidr) = match cidr.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, cidr.as_str()),
                };
                Entry::new(cidr, comment.as_deref(), nomatch)
            })
            .collect();
        let set = IpSet {
            comment: None,
            entries,
        };
        conf.ipsets.insert(name.clone(), set);
    }
    conf
}
