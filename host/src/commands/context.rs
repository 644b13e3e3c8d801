//! What the commands that run a configured policy share: the loaded
//! configuration, the policy to run, the global flags, and the one
//! conversion from a command line to a queued request.

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
    pub fn session(&self) -> Result<Session> {
        Session::open(&self.config, self.source.clone())
    }

    /// The state database; its failure says what to do (`Db::open`).
    pub fn db(&self) -> Result<Db> {
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
    }
}
