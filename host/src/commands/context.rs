//! What the commands that run a configured policy share: the loaded
//! configuration, the policy to run, the global flags, and the one
//! conversion from a command line to a queued request.

use super::cluster::{self, Bound};
use crate::cli::Target;
use crate::config::Config;
use crate::error::Result;
use crate::runtime::Source;
use crate::runtime::session::Session;
use crate::state::db::Db;
use crate::state::queue::Request;

/// One configured run.
pub struct Context {
    pub config: Config,
    pub source: Source,
    pub foreground: bool,
    /// Commit events and leave sending to `sync` or the timer.
    pub queue_only: bool,
}

impl Context {
    /// The policy with its capabilities, for a command that uses no state
    /// (`start`, `check`): the PVE nodes it knows are the IP literals.
    pub fn session(&self) -> Result<Session> {
        let literals = cluster::literal_addresses(&self.config);
        Session::open(&self.config, self.source.clone(), literals)
    }

    /// The policy with its capabilities, told the PVE nodes' addresses the
    /// state remembers ([`Context::state`]), its guard told the accept
    /// lists and the host names' addresses.
    pub fn session_for(&self, bound: &Bound) -> Result<Session> {
        let mut session = Session::open(
            &self.config,
            self.source.clone(),
            bound.node_addresses.clone(),
        )?;
        session.know(&bound.dns);
        Ok(session)
    }

    /// The state database, checked to serve this configuration's cluster
    /// (exit 3 when it serves another), the nodes' addresses and what
    /// `fail2pvefw dns` keeps. With `refresh` (`sync`), node names are
    /// resolved again.
    pub fn state(&self, refresh: bool) -> Result<(Db, Bound)> {
        let mut db = self.db()?;
        let mut bound = cluster::bind(&self.config, &mut db, refresh)?;
        bound.dns = cluster::dns_known(&self.config, &db)?;
        Ok((db, bound))
    }

    /// The state database; its failure says what to do (`Db::open`).
    fn db(&self) -> Result<Db> {
        Db::open(&self.config.state_dir)
    }
}

/// The request a `ban` or `unban` command line makes, in `default_ipset`
/// unless `-i` names another.
pub fn request_from(target: &Target, default_ipset: &str) -> Request {
    Request {
        ip: target.ip.clone(),
        ipset: target
            .ipset
            .clone()
            .unwrap_or_else(|| default_ipset.to_string()),
        jail: target.jail.clone(),
        comment: target.comment.clone(),
        time: target.time,
        bantime: target.bantime,
        failures: target.failures,
        restored: target.restored.unwrap_or(false),
        dns: None,
    }
}
