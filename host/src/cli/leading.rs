//! The old script's options before the command: Getopt::Long took `-i`,
//! `-c` and `-t` anywhere on the line, so `fail2pvefw -f -i fail2ban -c hello
//! ban 192.0.2.60` must work as `ban 192.0.2.60 -f -i fail2ban -c hello`
//! does. Like the rest of `cli`, it uses only clap and std.

use super::{Cli, Command, Defaults, Target};
use clap::{Args, CommandFactory};

/// The old script's options of a command, taken before the command too
/// (`fail2pvefw -f -i fail2ban -c hello ban 192.0.2.60`), as its
/// Getopt::Long did. [`Cli::settle`] hands them to the command, or refuses
/// them for a command that has no such option.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Options of the command, also taken before it")]
pub(super) struct Leading {
    /// The datacenter IPSet (ban, unban, dns, start, check, sync, status, doctor, sandbox)
    #[arg(short = 'i', long = "ipset", value_name = "IPSET")]
    ipset: Option<String>,

    /// Text for the entry's comment (ban, unban)
    #[arg(short = 'c', long = "comment", value_name = "COMMENT")]
    comment: Option<String>,

    /// When the ban began, in Unix seconds (ban, unban)
    #[arg(
        short = 't',
        long = "timestamp",
        visible_alias = "time",
        value_name = "EPOCH"
    )]
    time: Option<f64>,
}

impl Cli {
    /// Hands the options given before the command to it. Given both before
    /// and after the command, the later one wins, as with the old script.
    /// One the command does not take is a usage error naming it.
    pub(super) fn settle(mut self) -> Result<Cli, clap::Error> {
        let Leading {
            ipset,
            comment,
            time,
        } = std::mem::take(&mut self.leading);
        if let Command::Sandbox(args) = &mut self.command {
            // Its commands are parsed here; the options before `sandbox`
            // are defaults of each, as the sandbox's own.
            let trailing = args.settle(Defaults {
                ipset,
                comment,
                time,
            })?;
            self.policy = trailing.policy.or(self.policy.take());
            self.verbose += trailing.verbose;
            return Ok(self);
        }
        let name = self.command_name();
        let refuse = |option: &str, of: &str| {
            Cli::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "the option '{option}' does not apply to '{name}': it is an option of {of}"
                ),
            )
        };
        const TARGETS: &str = "ban and unban";
        if let Some(ipset) = ipset {
            let of = "ban, unban, dns, start, check, sync, status, doctor and sandbox";
            let slot = self.ipset_slot().ok_or_else(|| refuse("-i/--ipset", of))?;
            slot.get_or_insert(ipset);
        }
        if let Some(comment) = comment {
            let target = self
                .target()
                .ok_or_else(|| refuse("-c/--comment", TARGETS))?;
            target.comment.get_or_insert(comment);
        }
        if let Some(time) = time {
            let target = self
                .target()
                .ok_or_else(|| refuse("-t/--timestamp", TARGETS))?;
            target.time.get_or_insert(time);
        }
        Ok(self)
    }

    /// `ban`, `status`, ….
    fn command_name(&self) -> String {
        let name = match &self.command {
            Command::Ban(_) => "ban",
            Command::Unban(_) => "unban",
            Command::Dns(_) => "dns",
            Command::Start(_) => "start",
            Command::Check(_) => "check",
            Command::Trust(_) => "trust",
            Command::Sync(_) => "sync",
            Command::Status(_) => "status",
            Command::Doctor(_) => "doctor",
            Command::Init(_) => "init",
            Command::Flush(_) => "flush",
            Command::Crowdsec(_) => "crowdsec",
            Command::Drain => "drain",
            Command::Serve => "serve",
            Command::GenerateDocs(_) => "generate-docs",
            Command::Policy(_) => "policy",
            Command::Sandbox(_) => "sandbox",
        };
        name.to_string()
    }

    fn target(&mut self) -> Option<&mut Target> {
        match &mut self.command {
            Command::Ban(t) | Command::Unban(t) => Some(t),
            _ => None,
        }
    }

    fn ipset_slot(&mut self) -> Option<&mut Option<String>> {
        match &mut self.command {
            Command::Ban(t) | Command::Unban(t) => Some(&mut t.ipset),
            Command::Dns(d) => Some(&mut d.ipset),
            Command::Start(i) | Command::Check(i) | Command::Sync(i) | Command::Doctor(i) => {
                Some(&mut i.ipset)
            }
            Command::Status(s) => Some(&mut s.ipset),
            _ => None,
        }
    }
}
