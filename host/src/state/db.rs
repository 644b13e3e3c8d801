//! The state database: one SQLite file, `state.db`, under the state
//! directory, in WAL mode so many fail2pvefw processes (fail2ban starts one
//! per action) can read while one writes. It holds the policy's key-value
//! store (`kv`) and the queue of ban events with the desired and applied
//! sets (`queue`); this module opens it and owns the schema.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Db {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS policy_store (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;

-- Ban and unban events not yet confirmed by PVE, in arrival order.
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL CHECK (action IN ('ban', 'unban')),
    ipset TEXT NOT NULL,
    entry TEXT NOT NULL,            -- the exact string PVE stores
    request TEXT NOT NULL,          -- the request as JSON
    created REAL NOT NULL,          -- Unix seconds
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,  -- 1: PVE refused it for good
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS events_by_entry ON events (ipset, entry);

-- What fail2ban wants banned now; `sync` re-adds what PVE lacks.
CREATE TABLE IF NOT EXISTS desired (
    ipset TEXT NOT NULL,
    entry TEXT NOT NULL,
    request TEXT NOT NULL,
    jail TEXT,
    expires INTEGER,                -- Unix seconds; NULL: permanent
    PRIMARY KEY (ipset, entry)
) WITHOUT ROWID;

-- What PVE confirmed it holds, as far as we wrote it.
CREATE TABLE IF NOT EXISTS applied (
    ipset TEXT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (ipset, entry)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
";

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

/// Bumped when `SCHEMA` changes; kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// Sets WAL mode and creates the tables, once per database: later opens
/// only read `user_version`. Many processes may race to create a new
/// database; switching to WAL can answer "busy" without waiting, so it is
/// retried.
fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let mut tries = 0;
    loop {
        let result = conn
            .pragma_update(None, "journal_mode", "WAL")
            .and_then(|_| {
                conn.execute_batch(&format!(
                    "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
            });
        match result {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && tries < 100 =>
            {
                let _ = conn.execute_batch("ROLLBACK");
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
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
            .and_then(|_| prepare(&conn))
            .map_err(|e| format!("cannot prepare '{}': {e}", path.display()))?;
        Ok(Db { conn })
    }

    pub fn in_memory() -> Db {
        let conn = Connection::open_in_memory().expect("in-memory SQLite");
        conn.execute_batch(SCHEMA).expect("schema");
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
