//! The host's own entry writes, through the guard as the host (so an
//! accept list may be written, checked for form and width only) and
//! recorded as [`Write`]s like a policy's: the removal of an entry of ours
//! (`sync`, `dns`), and the add of a host name's entry (`dns`), PVE's
//! answer to a duplicate told apart from a refusal by reading the entry,
//! not by PVE's words.

use super::*;

/// How the host's own add of an entry ended.
#[derive(Clone, Debug)]
pub enum Added {
    /// PVE added it.
    New,
    /// It was there already: ours, or someone else's (an admin's entry
    /// with the same address), with its comment. Nothing was changed.
    Present { ours: bool, comment: Option<String> },
    /// PVE refused it, and the entry is not there: PVE's answer.
    Refused(Response),
}

impl Pve {
    /// The host's own removal of an entry it wrote (`sync` removing an
    /// expired one, `dns` one a name no longer resolves to): the same guard
    /// and the same read, tag check and digest as a policy's `DELETE
    /// …/IPSET/CIDR`, recorded as a [`Write`] like it. `cidr` is the entry
    /// as PVE stores it; the IPSet is granted for it (the host names it,
    /// not a policy), and may be an accept list.
    pub fn delete_own_entry(&mut self, ipset: &str, cidr: &str) -> Result<Response, Error> {
        self.guard.allow_ipset(ipset);
        let path = entry_path(ipset, cidr);
        self.guarded(Actor::Host, "DELETE", &path, &[])
    }

    /// Adds `cidr` (as PVE stores it) with `comment` to `ipset`, as the
    /// host. The guard's denial is `Err(Denied)`, no answer `Err(Unreachable)`.
    pub fn add_own_entry(
        &mut self,
        ipset: &str,
        cidr: &str,
        comment: &str,
    ) -> Result<Added, Error> {
        self.guard.allow_ipset(ipset);
        let path = format!("{IPSET_API}/{ipset}");
        let params = [
            ("cidr".to_string(), cidr.to_string()),
            ("comment".to_string(), comment.to_string()),
        ];
        let answer = self.guarded(Actor::Host, "POST", &path, &params)?;
        if is_success(&answer) {
            return Ok(Added::New);
        }
        if answer.status != 400 {
            return Ok(Added::Refused(answer));
        }
        // PVE answers a duplicate with a 400, as it does a bad parameter.
        let read = self.send("GET", &entry_path(ipset, cidr), &[], true)?;
        let Some((comment, _)) = is_success(&read).then(|| entry_of(&read.body)).flatten() else {
            return Ok(Added::Refused(answer));
        };
        let ours = fail2pvefw_sdk::tag::is_ours(comment.as_deref(), self.guard.instance());
        let outcome = if ours {
            WriteOutcome::Added
        } else {
            WriteOutcome::NotOurs
        };
        self.record(
            ipset.to_string(),
            cidr.to_string(),
            comment.clone(),
            outcome,
        );
        Ok(Added::Present { ours, comment })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::guard::{EntryRules, Purpose};

    const FW: &str = "[IPSET trusted]\n\n192.0.2.50 # manual-by-admin\n\n";

    fn pve() -> Pve {
        let mut guard = Guard::new(
            [("fail2ban".to_string(), Purpose::Ban)],
            &[],
            EntryRules::new(
                &config::Rules {
                    never_ban: vec!["192.0.2.0/24".into()],
                    ..config::Rules::default()
                },
                &[],
            ),
            "web01",
        );
        guard.mark_accept("trusted");
        Pve::in_memory(Cluster::from_cluster_fw(FW), guard)
    }

    #[test]
    fn the_host_adds_to_an_accept_list_and_leaves_a_manual_entry() {
        let mut pve = pve();
        let c = "home.test f2p:web01/dns/-";
        assert!(matches!(
            pve.add_own_entry("trusted", "192.0.2.7", c),
            Ok(Added::New)
        ));
        let again = pve.add_own_entry("trusted", "192.0.2.7", c);
        assert!(
            matches!(&again, Ok(Added::Present { ours: true, comment: Some(k) }) if k == c),
            "{again:?}"
        );
        let Ok(Added::Present { ours: false, .. }) = pve.add_own_entry("trusted", "192.0.2.50", c)
        else {
            panic!("{:?}", pve.calls)
        };
        let outcomes: Vec<_> = pve.take_writes().into_iter().map(|w| w.outcome).collect();
        assert_eq!(
            outcomes,
            [
                WriteOutcome::Added,
                WriteOutcome::Refused(400),
                WriteOutcome::Added,
                WriteOutcome::Refused(400),
                WriteOutcome::NotOurs
            ]
        );
        // The ban list keeps its rules for the host too.
        assert!(matches!(
            pve.add_own_entry("fail2ban", "192.0.2.7", c),
            Err(Error::Denied(_))
        ));
        let Ok(Added::Refused(r)) = pve.add_own_entry("nosuch", "198.51.100.1", c) else {
            panic!()
        };
        assert_eq!(r.status, 500);
    }
}
