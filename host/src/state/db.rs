//! The state database: one SQLite file, `state.db`, under the state
//! directory, in WAL mode so many fail2pvefw processes (fail2ban starts one
//! per action) can read while one writes. It holds the policy's key-value
//! store (`kv`) and the queue of ban events with the desired and applied
//! sets (`queue`); this module opens it, `schema` owns the tables.

use super::schema;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Db {
    conn: Connection,
}

/// Creates the state directory, private to its owner: it will hold the
/// policy's data and, later, trust pins.
pub fn ensure_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create state directory '{}': {e}", dir.display()))
}

impl Db {
    pub fn open(dir: &Path) -> Result<Db, String> {
        ensure_dir(dir)?;
        let path: PathBuf = dir.join("state.db");
        let conn = Connection::open(&path)
            .map_err(|e| format!("cannot open '{}': {e}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))
            // A ban fail2ban handed us must survive a power cut once we
            // said "done": every commit reaches the disk.
            .and_then(|_| conn.pragma_update(None, "synchronous", "FULL"))
            // fail2ban starts a process per ban and waits for it: no
            // checkpoint in that path. The last connection out would
            // checkpoint the WAL and delete it (fsyncs on every run), and
            // automatic checkpoints would land on a random ban; the drainer
            // and `sync` checkpoint instead (`Db::checkpoint`).
            .and_then(|_| {
                conn.set_db_config(
                    rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                    true,
                )
            })
            .and_then(|_| conn.pragma_update(None, "wal_autocheckpoint", 0))
            .map_err(|e| e.to_string())
            .and_then(|_| schema::prepare(&conn))
            .map_err(|e| format!("cannot prepare '{}': {e}", path.display()))?;
        Ok(Db { conn })
    }

    pub fn in_memory() -> Db {
        let conn = Connection::open_in_memory().expect("in-memory SQLite");
        conn.execute_batch(schema::SCHEMA).expect("schema");
        Db { conn }
    }

    /// Copies the WAL into the database and truncates it, without waiting
    /// for readers; called by the drainer and `sync`, off fail2ban's path.
    pub fn checkpoint(&self) {
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            crate::log::debug(&format!("WAL checkpoint skipped: {e}"));
        }
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}
