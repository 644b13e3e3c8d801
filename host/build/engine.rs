//! The wasmtime configuration, in one place for `build.rs` (which
//! precompiles the default policy) and the runtime (which loads that code,
//! or compiles custom policies): code compiled by one engine loads only into
//! an engine with the same settings, so both include this file.
//!
//! The target is set explicitly, to the triple fail2pvefw is built for:
//! that stops Cranelift from using the CPU features of the machine that
//! compiles (AVX on the build machine, say), so the precompiled code runs on
//! any CPU of the architecture. wasmtime still checks at load time that the
//! CPU has every feature the code was compiled for.

/// The engine's settings for `target` (a Rust target triple such as
/// `x86_64-unknown-linux-gnu`): fuel metering on (a policy call runs with
/// `[limits] fuel`), code for the architecture's baseline CPU.
pub fn config(target: &str) -> wasmtime::Result<wasmtime::Config> {
    let mut config = wasmtime::Config::new();
    config.consume_fuel(true);
    config.target(target)?;
    Ok(config)
}
