//! What a handler works with: the cluster's one file and the limits it is
//! saved under, who is calling, and the version the node reports.

use crate::clusterfw::Conf;
use crate::error::ApiError;
use serde_json::Value;

/// The privileges the caller's API token holds on `/` (§10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// `Sys.Audit`: every GET but `/version`.
    pub audit: bool,
    /// `Sys.Modify`: every POST, PUT and DELETE.
    pub modify: bool,
}

impl Caller {
    /// A token with both privileges.
    pub const FULL: Caller = Caller {
        audit: true,
        modify: true,
    };
}

/// `/etc/pve/firewall/cluster.fw` in pmxcfs: read whole by every request,
/// written whole by every write.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    /// The file's bytes; empty when it does not exist.
    pub file: Vec<u8>,
    /// Unix seconds, for `enable: <timestamp>` (§ `parse_clusterfw_option`).
    pub now: u64,
    pub max_file_size: usize,
    /// The worker whose temporary file the "File too large" error names.
    pub worker_pid: u32,
    /// How many times the file was written.
    pub saves: u64,
}

impl Store {
    /// `load_clusterfw_conf`.
    pub fn load(&self) -> Result<Conf, ApiError> {
        Conf::load(&self.file, self.now)
    }

    /// A write handler's body, as PVE runs it under the cluster lock: load,
    /// change, save — nothing is stored if the change fails, or if the file
    /// would exceed its cap (§8.3).
    pub fn write(
        &mut self,
        change: impl FnOnce(&mut Conf) -> Result<(), ApiError>,
    ) -> Result<Value, ApiError> {
        let mut conf = self.load()?;
        change(&mut conf)?;
        let bytes = conf.write().map_err(ApiError::die)?;
        if bytes.len() > self.max_file_size {
            return Err(ApiError::die(format!(
                "unable to write '/etc/pve/firewall/cluster.fw.tmp.{}' - File too large",
                self.worker_pid
            )));
        }
        self.file = bytes;
        self.saves += 1;
        Ok(Value::Null)
    }
}

/// One request's view: the store, the caller and the node's version.
pub(crate) struct Ctx<'a> {
    pub store: &'a mut Store,
    pub caller: Caller,
    pub version: &'a str,
}
