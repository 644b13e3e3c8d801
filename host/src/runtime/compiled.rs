//! Native code of policies: compiling a component costs 0.1–0.3 s,
//! loading compiled code well under a millisecond.
//!
//! - The default policy's code is precompiled by `build.rs` with the same
//!   engine settings (`build/engine.rs`) and embedded in the binary: no
//!   compile and no cache file for it. If it does not load (an engine or
//!   CPU mismatch), the embedded `.wasm` is compiled instead.
//! - A custom policy's code is cached in `<state dir>/cache`, keyed by the
//!   module's SHA-256 and the engine's compatibility hash. Loading compiled
//!   code runs whatever it contains, so the host records each cache file's
//!   SHA-256 in `state.db` when it writes the file, and reads the file into
//!   memory and checks it against that record before it deserialises those
//!   same bytes. A file without a record, or with other bytes, is never
//!   run: a warning, a recompile, a new file and record.

use crate::log;
use crate::state::db::Db;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

#[path = "../../build/engine.rs"]
mod settings;

/// The default policy's native code from `build.rs`; empty when the build
/// could not precompile it.
static DEFAULT_NATIVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/policy.cwasm"));

/// The target triple fail2pvefw was built for; the engine compiles for its
/// baseline CPU, as `build.rs` did.
const ENGINE_TARGET: &str = env!("FAIL2PVEFW_ENGINE_TARGET");

/// The table of recorded digests, in `state.db`. Created here, apart from
/// the queue's schema, since only this module reads or writes it.
const RECORDS: &str = "
CREATE TABLE IF NOT EXISTS compiled (
    file TEXT PRIMARY KEY,      -- a file name in <state dir>/cache
    sha256 TEXT NOT NULL,       -- of its bytes, when fail2pvefw wrote it
    written REAL NOT NULL       -- Unix seconds
) WITHOUT ROWID;
";

/// The engine every policy runs in, with the settings `build.rs` compiled
/// the default policy with.
pub fn engine() -> wasmtime::Result<Engine> {
    Engine::new(&settings::config(ENGINE_TARGET)?)
}

/// The default policy (`wasm`, the embedded component): its precompiled
/// code, or `wasm` compiled when that code does not load into `engine`.
pub fn embedded(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
    match load_embedded(engine) {
        Ok(component) => Ok(component),
        Err(why) => {
            log::debug(&format!(
                "compiling the default policy to native code: its precompiled code does not load: {why}"
            ));
            Component::new(engine, wasm)
        }
    }
}

/// The default policy's precompiled code in `engine`, or why not.
pub fn load_embedded(engine: &Engine) -> Result<Component, String> {
    if DEFAULT_NATIVE.is_empty() {
        return Err("this build of fail2pvefw has none".into());
    }
    // SAFETY: produced by `precompile_component` in build.rs from the
    // embedded policy and part of this binary, as trusted as the code that
    // runs it; wasmtime checks the engine's settings and this CPU's features
    // against it before using it.
    unsafe { Component::deserialize(engine, DEFAULT_NATIVE) }.map_err(|e| format!("{e:#}"))
}

/// Where custom policies' native code is kept: `<state dir>/cache`, with
/// the records in `<state dir>/state.db`.
#[derive(Clone, Debug)]
pub struct Cache {
    state_dir: PathBuf,
}

impl Cache {
    pub fn in_state_dir(state_dir: &Path) -> Cache {
        Cache {
            state_dir: state_dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.state_dir.join("cache")
    }
}

/// Loads `bytes` (the component `what` names, for messages) as a
/// component, through the cache when there is one.
pub fn load_cached(
    engine: &Engine,
    bytes: &[u8],
    cache: Option<&Cache>,
    what: &str,
) -> wasmtime::Result<Component> {
    let compile = || {
        log::debug(&format!("compiling {what} to native code"));
        Component::new(engine, bytes)
    };
    let Some(cache) = cache else {
        return compile();
    };
    let records = match Records::open(&cache.state_dir) {
        Ok(records) => records,
        Err(e) => {
            log::debug(&format!("not using the compiled-code cache: {e}"));
            return compile();
        }
    };
    let dir = cache.dir();
    let file = format!("policy-{}.cwasm", cache_key(engine, bytes));
    let path = dir.join(&file);
    match verified(&records, &path, &file) {
        Verified::Code(code) => {
            if let Some(component) = deserialize(engine, &path, &code) {
                return Ok(component);
            }
        }
        Verified::Absent => {}
        Verified::Refused(why) => log::warn(&format!(
            "{why}: it was not run; compiling {what} again\n\n\
             fail2pvefw records the SHA-256 of the native code it caches in state.db and runs a cached file only when it matches; the file is replaced now."
        )),
    }
    // A cold cache with many processes at once (fail2ban's first bans, a
    // burst of actions): one compiles, the others wait and then load its
    // result, instead of all of them compiling at once.
    let _compiling = lock_compiling(&dir);
    if let Verified::Code(code) = verified(&records, &path, &file)
        && let Some(component) = deserialize(engine, &path, &code)
    {
        return Ok(component);
    }
    log::debug(&format!("compiling {what} to native code"));
    let compiled = engine.precompile_component(bytes)?;
    // SAFETY: produced just now by this engine, from memory.
    let component = unsafe { Component::deserialize(engine, &compiled)? };
    // The record first: a reader that sees the new file finds its record.
    let stored = records
        .record(&file, &sha256_hex(&compiled))
        .and_then(|()| write_atomically(&dir, &path, &compiled).map_err(|e| e.to_string()));
    if let Err(e) = stored {
        log::debug(&format!(
            "cannot cache the compiled policy in '{}': {e}",
            dir.display()
        ));
    }
    Ok(component)
}

/// What is in the cache for one file.
enum Verified {
    /// No file.
    Absent,
    /// The file's bytes, which match their record.
    Code(Vec<u8>),
    /// Why the file must not run.
    Refused(String),
}

fn verified(records: &Records, path: &Path, file: &str) -> Verified {
    let code = match std::fs::read(path) {
        Ok(code) => code,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Verified::Absent,
        Err(e) => return Verified::Refused(format!("cannot read '{}': {e}", path.display())),
    };
    match check(records, file, &code) {
        Ok(()) => Verified::Code(code),
        Err(why) => Verified::Refused(format!("the cached native code '{}' {why}", path.display())),
    }
}

/// Whether `code` is what was recorded for `file`: `Err` says how not.
fn check(records: &Records, file: &str, code: &[u8]) -> Result<(), String> {
    match records.get(file) {
        Ok(Some(recorded)) if recorded == sha256_hex(code) => Ok(()),
        Ok(Some(_)) => Err("does not match the SHA-256 recorded when fail2pvefw wrote it".into()),
        Ok(None) => Err("has no record in state.db: fail2pvefw did not write it".into()),
        Err(e) => Err(format!("cannot be checked: {e}")),
    }
}

/// Loads checked code; `None` (compile instead) when this engine refuses
/// it, say after an upgrade of wasmtime with the same key.
fn deserialize(engine: &Engine, path: &Path, code: &[u8]) -> Option<Component> {
    // SAFETY: the bytes are the ones fail2pvefw wrote from
    // `precompile_component` of an engine with the same compatibility
    // hash, as their SHA-256 recorded in state.db shows, and they are
    // deserialised from memory, so the file cannot change after the check.
    match unsafe { Component::deserialize(engine, code) } {
        Ok(component) => Some(component),
        Err(e) => {
            log::debug(&format!(
                "recompiling: cached '{}' unusable: {e:#}",
                path.display()
            ));
            None
        }
    }
}

/// One cache file, as `doctor` reports it.
#[derive(Debug)]
pub struct CacheFile {
    pub path: PathBuf,
    /// `Err` says why it will not be run (and is recompiled instead).
    pub verdict: Result<(), String>,
}

/// Every `*.cwasm` in the cache of `state_dir`, checked against its record
/// as a run checks it. `Err` when the records cannot be read.
pub fn check_cache(state_dir: &Path) -> Result<Vec<CacheFile>, String> {
    let dir = Cache::in_state_dir(state_dir).dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list '{}': {e}", dir.display())),
    };
    let records = Records::open(state_dir)?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension().is_some_and(|x| x == "cwasm")
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let verdict = std::fs::read(&path)
                .map_err(|e| format!("cannot be read: {e}"))
                .and_then(|code| check(&records, &name, &code));
            CacheFile { path, verdict }
        })
        .collect())
}

/// The digests of the cache files, in `state.db`.
struct Records {
    db: Db,
}

impl Records {
    fn open(state_dir: &Path) -> Result<Records, String> {
        let db = Db::open(state_dir).map_err(|e| e.message)?;
        db.conn()
            .execute_batch(RECORDS)
            .map_err(|e| format!("cannot prepare the cache records in state.db: {e}"))?;
        Ok(Records { db })
    }

    fn get(&self, file: &str) -> Result<Option<String>, String> {
        use rusqlite::OptionalExtension;
        self.db
            .conn()
            .query_row(
                "SELECT sha256 FROM compiled WHERE file = ?1",
                [file],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| format!("cannot read the cache records in state.db: {e}"))
    }

    fn record(&self, file: &str, sha256: &str) -> Result<(), String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.db
            .conn()
            .execute(
                "INSERT OR REPLACE INTO compiled (file, sha256, written) VALUES (?1, ?2, ?3)",
                rusqlite::params![file, sha256, now],
            )
            .map(|_| ())
            .map_err(|e| format!("cannot record the cache file in state.db: {e}"))
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An exclusive lock on `<cache>/compile.lock`, held while compiling;
/// `None` (compile anyway) when the directory cannot be used.
fn lock_compiling(dir: &Path) -> Option<std::fs::File> {
    crate::state::db::ensure_dir(dir).ok()?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("compile.lock"))
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{}-{:016x}", hex(&digest.as_ref()[..16]), hasher.finish())
}

fn write_atomically(dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    crate::state::db::ensure_dir(dir).map_err(std::io::Error::other)?;
    crate::state::files::write_atomically(path, data, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::DEFAULT_POLICY;

    #[test]
    fn the_embedded_native_code_loads_into_the_runtime_engine() {
        // build.rs and the runtime share build/engine.rs; if they drifted,
        // every run would compile the default policy again.
        let engine = engine().unwrap();
        load_embedded(&engine).unwrap();
    }

    #[test]
    fn an_engine_that_does_not_fit_compiles_the_embedded_wasm() {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(false);
        let other = Engine::new(&config).unwrap();
        assert!(
            load_embedded(&other).is_err(),
            "fuel is part of the settings"
        );
        embedded(&other, DEFAULT_POLICY).unwrap();
    }

    #[test]
    fn cache_files_are_checked_against_their_records() {
        let state = tempfile::tempdir().unwrap();
        let engine = engine().unwrap();
        let cache = Cache::in_state_dir(state.path());
        load_cached(&engine, DEFAULT_POLICY, Some(&cache), "a policy").unwrap();
        let files = check_cache(state.path()).unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(files[0].verdict, Ok(()));

        let mut code = std::fs::read(&files[0].path).unwrap();
        let middle = code.len() / 2;
        code[middle] ^= 0xff;
        std::fs::write(&files[0].path, &code).unwrap();
        let files = check_cache(state.path()).unwrap();
        assert!(
            files[0]
                .verdict
                .as_ref()
                .unwrap_err()
                .contains("does not match"),
            "{files:?}"
        );
        // A run does not load it: it compiles and replaces it.
        load_cached(&engine, DEFAULT_POLICY, Some(&cache), "a policy").unwrap();
        assert_eq!(check_cache(state.path()).unwrap()[0].verdict, Ok(()));

        std::fs::copy(&files[0].path, cache.dir().join("policy-other.cwasm")).unwrap();
        let files = check_cache(state.path()).unwrap();
        let other = files
            .iter()
            .find(|f| f.path.ends_with("policy-other.cwasm"))
            .unwrap();
        assert!(
            other.verdict.as_ref().unwrap_err().contains("no record"),
            "{files:?}"
        );
    }
}
