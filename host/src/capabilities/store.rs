//! `store`: the policy's key-value store, namespaced per policy, with a quota.

use crate::bindings::fail2pvefw::policy::store;
use crate::bindings::fail2pvefw::policy::types::Error;
use crate::log;
use crate::state::db::Db;
use std::path::PathBuf;

/// Bytes of keys and values one policy may keep.
pub const QUOTA_BYTES: u64 = 1024 * 1024;

pub struct Store {
    /// Where `state.db` lives; `None` keeps everything in memory (sandbox).
    dir: Option<PathBuf>,
    db: Option<Db>,
    /// Which policy's data: the embedded default's or a module's.
    namespace: String,
}

impl Store {
    pub fn new(dir: Option<PathBuf>, namespace: String) -> Store {
        Store {
            dir,
            db: None,
            namespace,
        }
    }

    /// Opens the database on first use; a failure is logged and the store
    /// behaves as empty and read-only, rather than failing a ban.
    fn db(&mut self) -> Option<&Db> {
        if self.db.is_none() {
            self.db = match &self.dir {
                None => Some(Db::in_memory()),
                Some(dir) => match Db::open(dir) {
                    Ok(db) => Some(db),
                    Err(e) => {
                        log::warn(&format!("policy store unavailable: {e}"));
                        None
                    }
                },
            };
        }
        self.db.as_ref()
    }
}

impl store::Host for Store {
    fn get(&mut self, key: String) -> Option<String> {
        let ns = self.namespace.clone();
        self.db()?.get(&ns, &key).ok().flatten()
    }

    fn set(&mut self, key: String, value: String) -> Result<(), Error> {
        let ns = self.namespace.clone();
        let db = self
            .db()
            .ok_or_else(|| Error::Unreachable("the policy store could not be opened".into()))?;
        let used = db.usage(&ns).unwrap_or(0);
        let old = db
            .get(&ns, &key)
            .ok()
            .flatten()
            .map_or(0, |v| (key.len() + v.len()) as u64);
        let new = (key.len() + value.len()) as u64;
        if used - old.min(used) + new > QUOTA_BYTES {
            return Err(Error::Denied(format!(
                "the policy store is limited to {QUOTA_BYTES} bytes; '{key}' would exceed it"
            )));
        }
        db.set(&ns, &key, &value)
            .map_err(|e| Error::Unreachable(format!("policy store: {e}")))
    }

    fn delete(&mut self, key: String) {
        let ns = self.namespace.clone();
        if let Some(db) = self.db() {
            let _ = db.delete(&ns, &key);
        }
    }

    fn keys(&mut self, prefix: String) -> Vec<String> {
        let ns = self.namespace.clone();
        self.db()
            .and_then(|db| db.keys(&ns, &prefix).ok())
            .unwrap_or_default()
    }
}
