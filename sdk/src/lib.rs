//! # fail2pvefw-sdk: write a fail2pvefw policy in Rust
//!
//! A fail2pvefw policy is a WebAssembly component for the world `policy`
//! of [`wit/policy.wit`](https://example.invalid/fail2pvefw/sdk/wit/policy.wit)
//! (vendored in this crate at the version it targets, `fail2pvefw:policy@0.2.0`;
//! crate versions 0.2.x target WIT 0.2). It decides which PVE API calls
//! each fail2ban action makes; the host `fail2pvefw` runs it in a sandbox,
//! with the token, TLS and a guard on every request.
//!
//! ```
//! use fail2pvefw_sdk::{BanRequest, Error, Identity, Policy, comment, ipset};
//!
//! pub struct MyPolicy;
//!
//! impl Policy for MyPolicy {
//!     fn identity() -> Identity {
//!         Identity::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
//!     }
//!     fn ban(req: &BanRequest) -> Result<String, Error> {
//!         let (set, entry) = fail2pvefw_sdk::policy::checked(req)?;
//!         ipset::add(&set, entry.as_str(), &comment::for_ban(req))?;
//!         Ok(format!("added {entry}"))
//!     }
//!     fn unban(req: &BanRequest) -> Result<String, Error> {
//!         let (set, entry) = fail2pvefw_sdk::policy::checked(req)?;
//!         ipset::remove(&set, entry.as_str())?;
//!         Ok(format!("removed {entry}"))
//!     }
//! }
//!
//! fail2pvefw_sdk::export_policy!(MyPolicy);
//!
//! // Natively, against the test host: no wasm, nothing to fake.
//! # #[cfg(not(target_arch = "wasm32"))] {
//! use fail2pvefw_sdk::test_host::TestHost;
//!
//! let mut host = TestHost::new().ipset("fail2ban");
//! assert_eq!(host.ban::<MyPolicy>("10.0.0.1/24"), Ok("added 10.0.0.0/24".into()));
//! assert_eq!(host.cidrs("fail2ban"), ["10.0.0.0/24"]);
//! host.unban::<MyPolicy>("10.0.0.9/24").unwrap();
//! assert!(host.cidrs("fail2ban").is_empty());
//! # }
//! ```
//!
//! `fail2pvefw policy new NAME` writes such a crate, with native tests.
//!
//! ## What is here
//! - **The conventions**, plain code that needs no feature: the ownership
//!   tag ([`tag`]), the comment ([`comment`]), PVE's answers as the WIT
//!   error cases ([`answers`]), IPSet names and paths ([`ipset`]), the
//!   settings the host passes and which error a bad one is ([`rules`]), the
//!   exact normalisation PVE applies to an entry ([`cidr`]), the policy's
//!   identity ([`identity`]), and the default rules of what gets in when
//!   more is wanted than PVE can hold ([`admission`], CrowdSec's
//!   decisions). The host `fail2pvefw` uses this same code
//!   (`default-features = false`) to read the tags it guards.
//! - **The imports** as plain functions: [`pve::request`], [`store`],
//!   [`clock`], [`log`], [`settings`]; on wasm32 they call the host
//!   (feature `guest`), natively the test host.
//! - **[`Policy`]**, the trait a policy implements (every export, with
//!   defaults for `validate`, `start`, `check`, `entries` and `admit`), and
//!   [`export_policy!`], which exports it (on wasm32 only, so the crate
//!   also builds and tests natively).
//! - **[`test_host::TestHost`]** (feature `test-host`, native targets
//!   only): the imports answered in memory, PVE by the PVE model
//!   (`pve-model`), so `cargo test` runs a policy's exports with no wasm
//!   and nothing to fake.
//!
//! ## Features
//! - `guest` (default): the bindings (wit-bindgen), [`Policy`] and
//!   [`export_policy!`].
//! - `test-host` (default): [`test_host`], on native targets.
//!
//! With no features the conventions build alone, without wit-bindgen.

// So that paths in the generated bindings and the exported macros,
// `fail2pvefw_sdk::…`, resolve inside this crate too.
extern crate self as fail2pvefw_sdk;

/// Items that need a host to call: the guest's imports on wasm32, the test
/// host natively.
macro_rules! with_host {
    ($($item:item)*) => {
        $(
            #[cfg(any(feature = "guest", feature = "test-host"))]
            $item
        )*
    };
}
pub(crate) use with_host;

pub mod admission;
pub mod answers;
pub mod cidr;
pub mod comment;
pub mod identity;
pub mod ipset;
pub mod rules;
pub mod tag;
pub mod types;

pub use admission::{Admitted, Budget, Candidate};
pub use identity::Identity;
pub use tag::Owner;
pub use types::{BanRequest, Cause, Entry, Error, Level, Response};

with_host! {
    mod imports;
    pub mod policy;
    pub use imports::{clock, log, pve, settings, store};
    pub use policy::Policy;
}

#[cfg(feature = "guest")]
#[doc(hidden)]
pub mod bindings;

#[cfg(feature = "guest")]
#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

#[cfg(all(feature = "test-host", not(target_arch = "wasm32")))]
pub mod test_host;

/// Exports `$policy`, a type implementing [`Policy`], as the component's
/// `action` and `admission` interfaces (world `admitting-policy`; a policy
/// that keeps [`Policy::admit`]'s default admits by the default rules). Expands to nothing on other targets than wasm32, so
/// the crate also builds and runs its tests natively.
///
/// ```
/// # use fail2pvefw_sdk::{BanRequest, Error, Identity, Policy};
/// # struct MyPolicy;
/// # impl Policy for MyPolicy {
/// #     fn identity() -> Identity { Identity::new("mine", "1") }
/// #     fn ban(_: &BanRequest) -> Result<String, Error> { Ok("done".into()) }
/// #     fn unban(_: &BanRequest) -> Result<String, Error> { Ok("done".into()) }
/// # }
/// fail2pvefw_sdk::export_policy!(MyPolicy);
/// ```
#[cfg(feature = "guest")]
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type Fail2pvefwExported = $crate::bindings::Adapter<$policy>;
    $crate::__export_admitting_policy_impl!(Fail2pvefwExported with_types_in $crate::bindings);
        };
    };
}
