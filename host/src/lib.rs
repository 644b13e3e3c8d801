//! fail2pvefw: the native runner. It reads the configuration, holds the API
//! token and the TLS trust, and runs a sandboxed WebAssembly policy that
//! decides which Proxmox VE calls a ban or an unban makes.

pub mod app;
pub mod bindings;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod docs;
pub mod doctor;
pub mod drain;
pub mod error;
pub mod init;
pub mod log;
pub mod metrics;
pub mod policy_check;
pub mod runtime;
pub mod sandbox;
pub mod state;
pub mod status;
pub mod transport;
pub mod trust;
