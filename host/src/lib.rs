//! fail2pvefw: the native runner. It reads the configuration, holds the API
//! token and the TLS trust, and runs a sandboxed WebAssembly policy that
//! decides which Proxmox VE calls a ban or an unban makes.
//!
//! The folders, bottom to top; each uses only its own layer and those below:
//!
//! - `error`, `log` (stderr), `output` (stdout), `bindings` (the WIT world),
//!   `cli` (the clap definition, self-contained): the base.
//! - `config/`: the checked configuration file.
//! - `state/`: the SQLite database (policy store, queue), locks, files.
//! - `transport/`: the HTTPS client, TLS trust, stored pins, the probe.
//! - `capabilities/`: what a policy is granted, one module per WIT import.
//! - `runtime/`: the engine, the compiled cache, one policy instance, the
//!   session that puts its answers into words.
//! - `commands/`: one module per subcommand; `main.rs` calls `commands::run`.

pub mod bindings;
pub mod capabilities;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod log;
pub mod output;
pub mod runtime;
pub mod state;
pub mod transport;
