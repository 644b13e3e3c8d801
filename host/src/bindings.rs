//! The policy world of `wit/policy.wit`, as wasmtime's `bindgen!` makes it:
//! the `Policy` to instantiate, one `Host` trait per imported interface
//! (implemented in `capabilities`), and the types both sides share.

wasmtime::component::bindgen!({ path: "../wit", world: "policy" });

pub use self::exports::fail2pvefw::policy::action::{BanRequest, Entry};
pub use self::fail2pvefw::policy::types::{Error as PolicyError, Refusal, RefusalCause};
