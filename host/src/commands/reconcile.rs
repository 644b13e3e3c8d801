//! `sync`'s second half: make the IPSet agree with the desired set.

use super::drain::db_failure;
use super::metrics;
use crate::error::Failure;
use crate::log;
use crate::runtime::session::Session;
use crate::state::db::Db;
use crate::state::queue::{self, Action};
use std::collections::HashSet;

/// What `sync` changed in PVE besides draining.
#[derive(Default, Debug)]
pub struct Reconciled {
    pub readded: usize,
    pub expired_removed: usize,
    pub entries: usize,
}

/// Makes the IPSet agree with the desired set: re-adds desired entries PVE
/// lacks, removes our own entries whose ban has expired. Entries without our
/// tag, or with another instance's, are never touched.
pub fn reconcile(session: &mut Session, db: &mut Db, ipset: &str) -> Result<Reconciled, Failure> {
    let now = queue::now() as i64;
    let entries = session.entries(ipset)?.map_err(|r| r.failure)?;
    let present: HashSet<&str> = entries.iter().map(|e| e.cidr.as_str()).collect();
    let mut done = Reconciled {
        entries: entries.len(),
        ..Reconciled::default()
    };

    for want in queue::desired(db)
        .map_err(db_failure)?
        .into_iter()
        .filter(|d| d.ipset == ipset)
    {
        if want.expires.is_some_and(|t| t <= now) {
            // The ban is over; fail2ban (or the step below) removes it.
            queue::forget_desired(db, ipset, &want.entry).map_err(db_failure)?;
            continue;
        }
        if present.contains(want.entry.as_str()) {
            queue::set_applied(db, ipset, &want.entry, true).map_err(db_failure)?;
            continue;
        }
        if queue::has_pending(db, ipset, &want.entry).map_err(db_failure)? {
            continue;
        }
        let mut req = want.request.clone();
        req.restored = true;
        session.apply(Action::Ban, &req)?.map_err(|r| r.failure)?;
        metrics::count_applied(db, true);
        queue::set_applied(db, ipset, &want.entry, true).map_err(db_failure)?;
        log::info(&format!(
            "re-added {} to IPSet '{ipset}': PVE had lost it",
            want.entry
        ));
        done.readded += 1;
    }

    for entry in &entries {
        let Some(owner) = &entry.owner else { continue };
        let expired = owner.expires.is_some_and(|t| t <= now);
        if owner.instance != session.instance_name || !expired {
            continue;
        }
        if queue::has_pending(db, ipset, &entry.cidr).map_err(db_failure)? {
            continue;
        }
        let req = queue::Request {
            ip: entry.cidr.clone(),
            ipset: ipset.to_string(),
            jail: owner.jail.clone(),
            ..queue::Request::default()
        };
        session.apply(Action::Unban, &req)?.map_err(|r| r.failure)?;
        metrics::count_applied(db, false);
        queue::set_applied(db, ipset, &entry.cidr, false).map_err(db_failure)?;
        queue::forget_desired(db, ipset, &entry.cidr).map_err(db_failure)?;
        log::info(&format!(
            "removed expired {} from IPSet '{ipset}'",
            entry.cidr
        ));
        done.expired_removed += 1;
    }
    Ok(done)
}
