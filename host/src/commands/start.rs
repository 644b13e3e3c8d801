//! `start` and `check` (fail2ban's actionstart and actioncheck): the policy
//! checks that PVE is reachable and the IPSet exists.

use super::context::Context;
use crate::error::Result;

pub fn run(ctx: &Context, ipset: Option<String>, check: bool) -> Result<String> {
    let ipset = ipset.unwrap_or_else(|| ctx.config.ipset.clone());
    let mut session = ctx.session()?;
    let what = if check { "check" } else { "start" };
    let answer = if check {
        session.check(&ipset)?
    } else {
        session.start(&ipset)?
    };
    answer.map_err(|r| r.failure.context(what))
}
