//! Subnet escalation: after `threshold` bans of different addresses inside
//! one /24 (IPv4) or /64 (IPv6) within `window` seconds, ban the subnet and
//! remove its member entries. An unban of a member keeps the subnet until its
//! last member is unbanned, then removes it: ban and unban stay consistent.
//!
//! Built on the policy SDK (`fail2pvefw-sdk`): every entry's comment ends
//! with the ownership tag `f2p:INSTANCE/JAIL/EXPIRY`, the subnet's with the
//! latest expiry of its members, so the host lets the policy remove them
//! again, `status` counts them as ours, and `sync` expires the subnet when
//! its last ban is over (with fail2ban gone). `sync` reconciles by coverage:
//! the member bans are enforced by the subnet, so it re-adds nothing.
//!
//! Settings (the config's `[policy_settings]`): `threshold` (default 3, at
//! least 2), `window` in seconds (default 3600); a value that is not a
//! number is `denied` naming it. State lives in the `store` import, under
//! this policy's identity `subnet-escalation`: `hits/<subnet>` (recent
//! members) and `escalated/<subnet>` (the members of a banned subnet).
//!
//! `validate`, `start`, `check` and `entries` are the SDK's defaults; the
//! escalation is in [`logic`], tested natively against the SDK's test host.

pub mod logic;

use fail2pvefw_sdk::{BanRequest, Error, Identity, Policy};

pub struct SubnetEscalation;

impl Policy for SubnetEscalation {
    fn identity() -> Identity {
        Identity::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
    }

    /// One address, after the administrator's rules, as PVE stores it.
    fn validate(req: &BanRequest) -> Result<String, Error> {
        logic::member(req).map(|(_, member)| member.to_string())
    }

    fn ban(req: &BanRequest) -> Result<String, Error> {
        logic::ban(req)
    }

    fn unban(req: &BanRequest) -> Result<String, Error> {
        logic::unban(req)
    }
}

fail2pvefw_sdk::export_policy!(SubnetEscalation);
