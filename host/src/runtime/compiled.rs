//! The compiled-component cache: compiling a policy costs ~100 ms, loading
//! its compiled code ~0.1 ms, so the code is kept in the state directory
//! (`<state dir>/cache`), keyed by the module and the engine.

use crate::log;
use std::hash::{Hash, Hasher};
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Loads `bytes` as a component, through a cache of compiled code.
///
/// The key is the module's SHA-256 and the engine's compatibility hash
/// (wasmtime version and settings), so a new policy or a new fail2pvefw never
/// loads stale code. The cache lives in the state directory, which is 0700:
/// compiled code is trusted, so nobody else may write it.
pub fn load_cached(
    engine: &Engine,
    bytes: &[u8],
    cache_dir: Option<&Path>,
) -> wasmtime::Result<Component> {
    let Some(dir) = cache_dir else {
        return Component::new(engine, bytes);
    };
    let path = dir.join(format!("policy-{}.cwasm", cache_key(engine, bytes)));
    if let Some(component) = load_compiled(engine, &path) {
        return Ok(component);
    }
    // A cold cache with many processes at once (fail2ban's first bans, a
    // burst of actions): one compiles, the others wait and then load its
    // result, instead of all of them compiling at once.
    let _compiling = lock_compiling(dir);
    if let Some(component) = load_compiled(engine, &path) {
        return Ok(component);
    }
    let compiled = engine.precompile_component(bytes)?;
    // SAFETY: produced just now by this engine.
    let component = unsafe { Component::deserialize(engine, &compiled)? };
    if let Err(e) = write_atomically(dir, &path, &compiled) {
        log::debug(&format!(
            "cannot cache the compiled policy in '{}': {e}",
            dir.display()
        ));
    }
    Ok(component)
}

fn load_compiled(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: the file was written by `precompile_component` of an engine
    // with the same compatibility hash, into a directory only we can write.
    match unsafe { Component::deserialize_file(engine, path) } {
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
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{hex}-{:016x}", hasher.finish())
}

fn write_atomically(dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    crate::state::db::ensure_dir(dir).map_err(std::io::Error::other)?;
    crate::state::files::write_atomically(path, data, 0o600)
}
