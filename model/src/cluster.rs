//! [`Cluster`]: one PVE cluster's datacenter firewall, answering API
//! requests in memory.

use crate::clusterfw::{Conf, Entry, IpSet};
use crate::context::{Caller, Ctx, Store};
use crate::error::ApiError;
use crate::params::{self, Params};
use crate::pipeline::{self, Call};
use crate::response::Response;

/// A PVE cluster as the datacenter-firewall API sees it: the text of
/// `cluster.fw`, read afresh by every request and rewritten whole by every
/// write, as PVE does. No I/O, no threads, no clock: the time is whatever
/// [`Cluster::set_time`] last said (0 by default).
#[derive(Debug, Clone)]
pub struct Cluster {
    store: Store,
    legacy_errors: bool,
    version: String,
}

impl Default for Cluster {
    fn default() -> Cluster {
        Cluster::from_cluster_fw(Vec::new())
    }
}

impl Cluster {
    /// A cluster whose `cluster.fw` holds these bytes (empty: no file).
    pub fn from_cluster_fw(text: impl Into<Vec<u8>>) -> Cluster {
        Cluster {
            store: Store {
                file: text.into(),
                now: 0,
                max_file_size: crate::clusterfw::MAX_FILE_SIZE,
                worker_pid: 1,
                saves: 0,
            },
            legacy_errors: false,
            version: "9.0.3".into(),
        }
    }

    /// A cluster with these empty ipsets and nothing else.
    pub fn with_ipsets<'a>(names: impl IntoIterator<Item = &'a str>) -> Cluster {
        let mut conf = Conf::default();
        for name in names {
            conf.ipsets.insert(name.to_string(), IpSet::default());
        }
        Cluster::from_cluster_fw(conf.write().unwrap_or_default())
    }

    /// Omit `message` from error bodies, as http-server < 5.2.0 (§6).
    pub fn legacy_errors(mut self, on: bool) -> Cluster {
        self.legacy_errors = on;
        self
    }

    /// The cap on `cluster.fw` (default [`crate::MAX_FILE_SIZE`], §8.3).
    pub fn max_file_size(mut self, bytes: usize) -> Cluster {
        self.store.max_file_size = bytes;
        self
    }

    /// The process id the "File too large" message names (default 1).
    pub fn worker_pid(mut self, pid: u32) -> Cluster {
        self.store.worker_pid = pid;
        self
    }

    /// What `GET /version` reports, e.g. "9.0.3"; `release` is derived.
    pub fn version(mut self, version: &str) -> Cluster {
        self.version = version.to_string();
        self
    }

    /// The clock, in Unix seconds, for options such as `enable: <time>`.
    pub fn set_time(&mut self, unix_secs: u64) {
        self.store.now = unix_secs;
    }

    /// The bytes of `cluster.fw` (empty when PVE would have deleted it).
    pub fn cluster_fw(&self) -> &[u8] {
        &self.store.file
    }

    /// Replaces `cluster.fw`, as an administrator's hand edit would.
    pub fn set_cluster_fw(&mut self, text: impl Into<Vec<u8>>) {
        self.store.file = text.into();
    }

    /// How many writes have saved `cluster.fw`: a node would have written
    /// the file this often.
    pub fn saves(&self) -> u64 {
        self.store.saves
    }

    /// A fresh parse of `cluster.fw`, as every request makes it.
    pub fn conf(&self) -> Conf {
        Conf::parse(&self.store.file, self.store.now)
    }

    /// The ipset names as `GET /cluster/firewall/ipset` lists them.
    pub fn ipsets(&self) -> Vec<String> {
        self.conf().ipsets.into_keys().collect()
    }

    /// An ipset's entries in file order, as `GET` shows them; `None` if
    /// there is no such ipset.
    pub fn entries(&self, ipset: &str) -> Option<Vec<Entry>> {
        self.conf().ipsets.remove(ipset).map(|set| set.entries)
    }

    /// One request, answered as PVE answers it. `path` follows
    /// `/api2/json`, percent-encoded as on the wire; `params` are the
    /// decoded query or form pairs (a repeated key becomes a list).
    pub fn handle(
        &mut self,
        method: &str,
        path: &str,
        params: &[(String, String)],
        caller: &Caller,
    ) -> Response {
        match self.prepare(method, path, params::from_pairs(params), caller) {
            Ok(call) => self.run(&call),
            Err(response) => response,
        }
    }

    /// The checks before the handler (routing, conflicts between path and
    /// parameters, privilege, schema): an `Err` is the answer. A server
    /// that must take a lock around writes (or fail them) does so between
    /// this and [`Cluster::run`].
    pub fn prepare(
        &self,
        method: &str,
        path: &str,
        params: Params,
        caller: &Caller,
    ) -> Result<Call, Response> {
        pipeline::prepare(method, path, params, caller)
            .map_err(|e| Response::error(e, self.legacy_errors))
    }

    /// The handler of a prepared call.
    pub fn run(&mut self, call: &Call) -> Response {
        let mut ctx = Ctx {
            store: &mut self.store,
            caller: call.caller(),
            version: &self.version,
        };
        Response::of(pipeline::run(call, &mut ctx), self.legacy_errors)
    }

    /// A handler's `die` with this status and message, encoded as this
    /// cluster encodes errors: for failures a server injects, such as a
    /// cfs-lock timeout.
    pub fn fail(&self, status: u16, message: &str) -> Response {
        Response::error(ApiError::status(status, message), self.legacy_errors)
    }
}
