//! The commands, one module per subcommand: `run` sets up the log, loads
//! the configuration and the policy where a command needs them, and hands
//! over.
//!
//! `ban`, `unban`, `dns`, `start`, `check`, `sync`, `status`, `flush`,
//! `crowdsec` and the hidden `drain` run the configured policy (`context`); `sandbox`,
//! `policy`, `generate-docs`, `init` and `doctor` need no configuration, or
//! check it themselves.

pub mod ban;
pub mod cluster;
pub mod context;
pub mod crowdsec;
pub mod dns;
pub mod docs;
pub mod doctor;
pub mod drain;
pub mod errors;
pub mod flush;
pub mod init;
pub mod local_api;
pub mod metrics;
pub mod policy;
pub mod policy_new;
pub mod reconcile;
pub mod sandbox;
pub mod serve;
pub mod start;
pub mod status;
pub mod status_report;
pub mod sync;
pub mod trust;

use crate::cli::{Cli, Command, IpsetOnly, LogFormat, SandboxCommand};
use crate::config::Config;
use crate::error::Result;
use crate::log;
use crate::runtime::Source;
use crate::state::queue::Action;
use context::Context;

/// Runs one command; `Ok` carries what to tell the user.
pub fn run(cli: Cli) -> Result<String> {
    log::set_threshold(match cli.verbose {
        0 => log::Level::Warn,
        1 => log::Level::Info,
        _ => log::Level::Debug,
    });
    log::set_format(match cli.log_format {
        LogFormat::Text => log::Format::Text,
        LogFormat::Json => log::Format::Json,
    });
    // These need no configuration file, token or PVE, or check it themselves.
    match cli.command {
        Command::Sandbox(args) => {
            return match args.commands.as_slice() {
                // No policy runs: the host's own writes.
                [SandboxCommand::Dns(dns)] => dns::sandbox::run(&args, dns),
                _ => sandbox::run(args, cli.policy),
            };
        }
        Command::Policy(args) => return policy::run(args),
        Command::GenerateDocs(args) => return docs::run(&args),
        Command::Init(args) => return init::run(&args),
        Command::Doctor(IpsetOnly { ipset }) => return doctor::run(&cli.config, ipset),
        _ => {}
    }
    let config = Config::load(&cli.config)?;
    for warning in &config.warnings {
        log::warn(warning);
    }
    if let Command::Trust(args) = &cli.command {
        return trust::run(&config, args.yes);
    }
    if cli.manual {
        trust::manual(&config)?;
    }
    let source = match cli.policy.clone().or_else(|| config.policy.clone()) {
        Some(path) => Source::File(path),
        None => Source::Embedded,
    };
    let ctx = Context {
        config,
        source,
        foreground: cli.foreground,
        queue_only: cli.queue_only,
        // The Python action's fallback sets FAIL2PVEFW_NO_HANDOFF: it
        // already found the service unreachable.
        handoff: cli.policy.is_none() && std::env::var_os("FAIL2PVEFW_NO_HANDOFF").is_none(),
    };
    match cli.command {
        Command::Ban(target) => ban::submit(&ctx, &target, Action::Ban),
        Command::Unban(target) => ban::submit(&ctx, &target, Action::Unban),
        Command::Dns(args) => dns::run(&ctx, &args),
        Command::Start(IpsetOnly { ipset }) => start::run(&ctx, ipset, false),
        Command::Check(IpsetOnly { ipset }) => start::run(&ctx, ipset, true),
        Command::Sync(IpsetOnly { ipset }) => sync::run(&ctx, ipset),
        Command::Status(status) => status::run(&ctx, &status),
        Command::Flush(flush) => flush::run(&ctx, &flush),
        Command::Crowdsec(args) => crowdsec::run(&ctx, &args),
        Command::Drain => drain::run(&ctx),
        Command::Serve => serve::run(ctx),
        Command::Trust(_)
        | Command::Sandbox(_)
        | Command::Policy(_)
        | Command::GenerateDocs(_)
        | Command::Init(_)
        | Command::Doctor(_) => {
            unreachable!("handled above")
        }
    }
}
