//! The state database: one SQLite file, `state.db`, under the state
//! directory, in WAL mode so many fail2pvefw processes (fail2ban starts one
//! per action) can read while one writes. It holds the policy's key-value
//! store (`kv`) and the queue of ban events with the desired and applied
//! sets (`queue`); this module opens it, `schema` owns the tables.

use super::schema;
use crate::error::Failure;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Db {
    conn: Connection,
}

/// Creates the state directory, private to its owner (0700): it holds the
/// queue, the policy's data and the trust pins. One that exists with a
/// looser mode (made by hand, or by an older version) is tightened.
pub fn ensure_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create state directory '{}': {e}", dir.display()))?;
    tighten(dir, 0o700);
    Ok(())
}

/// Takes group and other permissions off `path` (to `mode`) when it has
/// any; a file we may not chmod (not ours) is left as it is, with a warning.
fn tighten(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let now = meta.permissions().mode() & 0o777;
    if now & 0o077 == 0 {
        return;
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => crate::log::info(&format!(
            "'{}' was mode {now:04o}: tightened to {mode:04o}",
            path.display()
        )),
        Err(e) => crate::log::warn(&format!(
            "'{}' is mode {now:04o}, readable by others, and cannot be tightened to {mode:04o}: {e}",
            path.display()
        )),
    }
}

/// `state.db` and SQLite's files beside it: 0600. SQLite gives the `-wal`
/// and `-shm` files it creates the database file's mode, so a database
/// created 0600 keeps them private; older ones are tightened on open.
fn private_files(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => tighten(path, 0o600),
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        tighten(Path::new(&side), 0o600);
    }
    Ok(())
}

/// Why `state.db` could not be opened, and what to do: a file that is not
/// a database (or a damaged one) is not a permission problem.
fn open_failure(path: &Path, e: &rusqlite::Error) -> Failure {
    use rusqlite::ErrorCode::{
        CannotOpen, DatabaseCorrupt, NotADatabase, PermissionDenied, ReadOnly,
    };
    let code = e.sqlite_error_code();
    if matches!(code, Some(NotADatabase | DatabaseCorrupt)) {
        let p = path.display();
        return Failure::config(format!("'{p}' is not a usable state database: {e}")).hint(format!(
            "The file is damaged, or something else was written over it; permissions are not the problem. Move it aside and run the command again, which starts an empty state:\n  mv '{p}' '{p}.broken'\nEvents still queued in it are lost; entries already in PVE stay there, and `fail2pvefw sync` removes this instance's expired ones by their tags."
        ));
    }
    let failure = Failure::config(format!("cannot open '{}': {e}", path.display()));
    if matches!(code, Some(CannotOpen | PermissionDenied | ReadOnly)) {
        failure.hint(WRITABLE_HINT)
    } else {
        failure
    }
}

const WRITABLE_HINT: &str =
    "Check [state] dir: it must be writable by the user fail2ban runs as (usually root).";

impl Db {
    /// Opens (or creates) `state.db` in `dir`, which it creates 0700; the
    /// file is 0600. A failure says whether to fix permissions or to move a
    /// damaged file aside (exit 3 either way).
    pub fn open(dir: &Path) -> Result<Db, Failure> {
        ensure_dir(dir).map_err(|e| Failure::config(e).hint(WRITABLE_HINT))?;
        let path: PathBuf = dir.join("state.db");
        private_files(&path).map_err(|e| {
            Failure::config(format!("cannot create '{}': {e}", path.display())).hint(WRITABLE_HINT)
        })?;
        let conn = Connection::open(&path).map_err(|e| open_failure(&path, &e))?;
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
            // The first read of the file: a garbled one fails here, with
            // SQLite's own code for it.
            .and_then(|_| conn.query_row("PRAGMA user_version", [], |_| Ok(())))
            .map_err(|e| open_failure(&path, &e))?;
        schema::prepare(&conn)
            .map_err(|e| Failure::config(format!("cannot prepare '{}': {e}", path.display())))?;
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
