//! The default fail2pvefw policy: what to do for each fail2ban action, on
//! the policy SDK (`fail2pvefw-sdk`, `../sdk`).
//!
//! The SDK holds the conventions every policy shares, and this policy's
//! `validate`, `start`, `check` and `entries` are the SDK's defaults
//! (`fail2pvefw_sdk::policy`): the exact entry PVE stores after the
//! administrator's rules, one GET of the IPSet (with a warning when it
//! fills `cluster.fw`), every entry with the owner its tag names. Its own
//! logic is in [`plan`]: what `ban` and `unban` send and say.

pub mod plan;

use fail2pvefw_sdk::{BanRequest, Error, Identity, Policy};

/// The policy; its store (unused) is kept under `fail2pvefw-default`.
pub struct DefaultPolicy;

/// The identity's name: what the host keys this policy's store by.
pub const NAME: &str = "fail2pvefw-default";

impl Policy for DefaultPolicy {
    fn identity() -> Identity {
        Identity::new(NAME, env!("CARGO_PKG_VERSION"))
    }

    fn ban(req: &BanRequest) -> Result<String, Error> {
        plan::ban(req)
    }

    fn unban(req: &BanRequest) -> Result<String, Error> {
        plan::unban(req)
    }
}

fail2pvefw_sdk::export_policy!(DefaultPolicy);
