//! What both workers share: the state and the warm policy each opens for
//! itself, and how the intake wakes the sender.

use crate::commands::cluster::{self, Bound};
use crate::config::Config;
use crate::error::Result;
use crate::runtime::Source;
use crate::runtime::session::Session;
use crate::state::db::Db;
use std::sync::Arc;

/// What the sender is told.
pub enum Wake {
    /// An event was committed: drain now.
    Queued,
    Reload(Arc<Config>),
    Stop,
}

/// The state and the policy for `config`, as a CLI run opens them.
pub fn open(config: &Config, source: &Source) -> Result<(Db, Bound, Session)> {
    let mut db = Db::open(&config.state_dir)?;
    let mut bound = cluster::bind(config, &mut db, false)?;
    bound.dns = cluster::dns_known(config, &db)?;
    let mut session = Session::open(config, source.clone(), bound.node_addresses.clone())?;
    session.know(&bound.dns);
    Ok((db, bound, session))
}
