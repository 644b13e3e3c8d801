//! `store`: the policy's key-value store, namespaced per policy by the name
//! of its identity (the `identity` export), with a quota.
//!
//! Before policies declared an identity, the store was keyed by the
//! module's file name (`default` for the built-in one). The first time a
//! policy's store is opened under its identity while that namespace is
//! empty, the file name's data moves there (logged).

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
    /// Which policy's data: its identity's name once the runtime has asked
    /// ([`Store::use_identity`]).
    namespace: String,
    /// The namespace it had before: the file name's, to move from.
    legacy: Option<String>,
}

impl Store {
    /// A store under `namespace` (the policy's file name until the runtime
    /// learns its identity).
    pub fn new(dir: Option<PathBuf>, namespace: String) -> Store {
        Store {
            dir,
            db: None,
            namespace,
            legacy: None,
        }
    }

    /// Keys the store by the policy's identity `name` from now on; the data
    /// of the namespace it had (the file name's) moves there when the
    /// store is first opened and `name` holds nothing yet.
    pub fn use_identity(&mut self, name: &str) {
        if self.namespace != name {
            let old = std::mem::replace(&mut self.namespace, name.to_string());
            self.legacy = Some(old);
        }
    }

    /// The namespace the policy's data is kept under.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Sets these keys, as the policy would (the sandbox's `--store`);
    /// `Err` says why the store cannot take them.
    pub fn load(
        &mut self,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), String> {
        let ns = self.namespace.clone();
        let db = self.db().ok_or("the store could not be opened")?;
        for (key, value) in pairs {
            db.set(&ns, &key, &value).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Every key and value, sorted (the sandbox's `--store`).
    pub fn dump(&mut self) -> Vec<(String, String)> {
        let ns = self.namespace.clone();
        let Some(db) = self.db() else {
            return Vec::new();
        };
        db.keys(&ns, "")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|k| Some((k.clone(), db.get(&ns, &k).ok().flatten()?)))
            .collect()
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
            if let (Some(db), Some(legacy)) = (&mut self.db, self.legacy.take()) {
                move_legacy(db, &legacy, &self.namespace);
            }
        }
        self.db.as_ref()
    }
}

/// Moves the store kept under the module's file name to its identity.
fn move_legacy(db: &mut Db, legacy: &str, namespace: &str) {
    match db.move_namespace(legacy, namespace) {
        Ok(0) => {}
        Ok(n) => log::info(&format!(
            "moved the policy's store ({n} keys) from '{legacy}', the module's file name, to \
             its identity '{namespace}'"
        )),
        Err(e) => log::warn(&format!(
            "could not move the policy's store from '{legacy}' to '{namespace}': {e}"
        )),
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
