//! `fail2pvefw status`: the queue, the last error, the IPSet and the host
//! names `dns` keeps, as text, JSON or Prometheus exposition.

use super::context::Context;
use super::errors::db_failure;
use super::metrics::{Counters, render};
use super::status_report::{NameReport, gather};
use crate::cli::Status;
use crate::config::Config;
use crate::error::Result;
use crate::runtime::session::Session;
use crate::state::db::Db;
use crate::state::{dns, stats};

pub fn run(ctx: &Context, status: &Status) -> Result<String> {
    let (db, bound) = ctx.state(false)?;
    let mut session = ctx.session_for(&bound)?;
    report(&ctx.config, &mut session, &db, status)
}

/// The status text (or JSON, or exposition); the command, the local API
/// and `/metrics` of `fail2pvefw serve` share it. It never holds the token.
pub fn report(config: &Config, session: &mut Session, db: &Db, status: &Status) -> Result<String> {
    let stats = stats::stats(db).map_err(db_failure)?;
    let ipset = status.ipset.clone().unwrap_or_else(|| config.ipset.clone());
    let mut report = gather(session, stats, &ipset)?;
    report.crowdsec = super::crowdsec::report::gather(db, config)?;
    report.dns = dns::records(db.conn())
        .map_err(db_failure)?
        .into_iter()
        .map(|(name, record)| NameReport { name, record })
        .collect();
    if status.prometheus {
        let counters = Counters::load(db).map_err(db_failure)?;
        // `main` adds the last newline.
        return Ok(render(&report, &counters).trim_end().to_string());
    }
    Ok(if status.json {
        report.json()
    } else {
        report.human()
    })
}
