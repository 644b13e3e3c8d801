//! The default fail2pvefw policy: what to do for each fail2ban action, on
//! the policy SDK (`fail2pvefw-sdk`, `../sdk`).
//!
//! The SDK holds the conventions every policy shares, and this policy's
//! `validate`, `start`, `check`, `entries` and `admit` are the SDK's
//! defaults (`fail2pvefw_sdk::policy`): the exact entry PVE stores after the
//! administrator's rules, one GET of the IPSet (with a warning when it
//! fills `cluster.fw`), every entry with the owner its tag names, and the
//! default rules of what gets in under `[crowdsec]`'s budget
//! (`fail2pvefw_sdk::admission`; the host also falls back on this policy's
//! `admit` for a policy that exports no `admission`). It exports the world
//! `admitting-policy`. Its own logic is in [`plan`]: what `ban` and `unban`
//! send and say (a CrowdSec entry's comment is the chosen one, no
//! timestamp: `fail2pvefw_sdk::comment::for_ban`).

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

#[cfg(test)]
mod tests {
    use super::DefaultPolicy as P;
    use fail2pvefw_sdk::admission::JAIL;
    use fail2pvefw_sdk::test_host::TestHost;
    use fail2pvefw_sdk::{BanRequest, Budget, Candidate};

    #[test]
    fn it_admits_by_the_default_rules_and_bans_a_chosen_entry_with_its_comment() {
        let mut host = TestHost::new().ipset("crowdsec").instance("web01");
        let cands = [Candidate {
            key: "1".into(),
            entry: "192.0.2.5".into(),
            origin: "cscli".into(),
            scenario: "manual 'ban' from 'x'".into(),
            expires: 1_700_003_600,
            seen: 1_700_000_000,
            admitted: false,
        }];
        let budget = Budget {
            max_entries: Some(10),
            ..host.budget()
        };
        let answer = host.admit::<P>(&cands, &budget).unwrap();
        assert_eq!(answer.chosen.len(), 1);
        let chosen = &answer.chosen[0];
        let req = BanRequest {
            jail: Some(JAIL.into()),
            comment: Some(chosen.comment.clone()),
            time: Some(1_700_000_000.0),
            bantime: Some(3600),
            restored: true,
            ..host.request(&chosen.entry)
        };
        host.ban_with::<P>(&req).unwrap();
        let entries = host.entries("crowdsec");
        assert_eq!(
            entries[0].comment.as_deref(),
            Some("cs cscli manual 'ban' from 'x' f2p:web01/crowdsec/1700003600")
        );
    }
}
