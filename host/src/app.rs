//! The commands: load the configuration, run the policy, turn its outcome
//! into a message and an exit code.

use crate::capabilities::{self, HostState};
use crate::cli::{Cli, Command, IpsetOnly, Target};
use crate::config::Config;
use crate::error::{Failure, Result};
use crate::log;
use crate::policy::{self, BanRequest, Instance, PolicyError, Refusal, Runtime, Source};

/// Runs one command; `Ok` carries what to tell the user.
pub fn run(cli: Cli) -> Result<String> {
    log::set_threshold(match cli.verbose {
        0 => log::Level::Warn,
        1 => log::Level::Info,
        _ => log::Level::Debug,
    });
    let config = Config::load(&cli.config)?;
    for warning in &config.warnings {
        log::warn(warning);
    }
    let source = match cli.policy.clone().or_else(|| config.policy.clone()) {
        Some(path) => Source::File(path),
        None => Source::Embedded,
    };
    let mut session = Session::open(config, source)?;
    match cli.command {
        Command::Ban(target) => session.ban_or_unban(&target, Action::Ban),
        Command::Unban(target) => session.ban_or_unban(&target, Action::Unban),
        Command::Start(IpsetOnly { ipset }) => session.start_or_check(ipset, false),
        Command::Check(IpsetOnly { ipset }) => session.start_or_check(ipset, true),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Ban,
    Unban,
}

/// A loaded policy with its capabilities, for one command.
struct Session {
    instance: Instance,
    config_path: std::path::PathBuf,
    token_id: String,
    default_ipset: String,
}

impl Session {
    fn open(config: Config, source: Source) -> Result<Session> {
        let cache = config.state_dir.join("cache");
        let runtime = Runtime::load(source.clone(), Some(&cache))?;
        let state = HostState::new(
            capabilities::pve::Pve::new(config.pve.clone()),
            capabilities::store::Store::new(Some(config.state_dir.clone()), source.namespace()),
            capabilities::log::Log {
                source: source.describe(),
            },
            policy::limits(policy::DEFAULT_MEMORY),
        );
        Ok(Session {
            instance: runtime.instantiate(state)?,
            config_path: config.path,
            token_id: config.pve.token.id.clone(),
            default_ipset: config.ipset,
        })
    }

    fn ban_or_unban(&mut self, target: &Target, action: Action) -> Result<String> {
        let req = BanRequest {
            ip: target.ip.clone(),
            ipset: target
                .ipset
                .clone()
                .unwrap_or_else(|| self.default_ipset.clone()),
            jail: target.jail.clone(),
            comment: target.comment.clone(),
            time: target.time,
            bantime: target.bantime,
            failures: target.failures,
            restored: target.restored.unwrap_or(false),
        };
        let verb = if action == Action::Ban {
            "ban"
        } else {
            "unban"
        };
        let what = format!("{verb} '{}'", target.ip);
        // Checked without I/O first: bad input never reaches PVE.
        let entry = self
            .instance
            .validate(&req)?
            // The policy's message already quotes the input.
            .map_err(|e| self.failure(e, &req.ipset).context(verb))?;
        log::debug(&format!("'{}' is stored by PVE as '{entry}'", target.ip));
        let outcome = match action {
            Action::Ban => self.instance.ban(&req)?,
            Action::Unban => self.instance.unban(&req)?,
        };
        outcome.map_err(|e| self.failure(e, &req.ipset).context(&what))
    }

    fn start_or_check(&mut self, ipset: Option<String>, check: bool) -> Result<String> {
        let ipset = ipset.unwrap_or_else(|| self.default_ipset.clone());
        let outcome = if check {
            self.instance.check(&ipset)?
        } else {
            self.instance.start(&ipset)?
        };
        let what = if check { "check" } else { "start" };
        outcome.map_err(|e| self.failure(e, &ipset).context(what))
    }

    /// Words and a remedy for what the policy reported.
    fn failure(&mut self, error: PolicyError, ipset: &str) -> Failure {
        match error {
            PolicyError::InvalidInput(msg) => Failure::input(msg),
            PolicyError::Denied(msg) => Failure::config(format!("the policy was denied: {msg}")),
            PolicyError::Refused(refusal) => self.refused(&refusal, ipset),
            PolicyError::Unreachable(msg) => self
                .instance
                .state_mut()
                .pve
                .last_failure
                .take()
                .unwrap_or_else(|| Failure::pve(msg)),
            PolicyError::Busy(msg) => Failure::pve(format!("PVE is busy: {msg}"))
                .hint("The cluster-wide firewall lock is contended or the node is overloaded; try again in a few seconds."),
        }
    }

    fn refused(&self, refusal: &Refusal, ipset: &str) -> Failure {
        let message = format!("PVE refused: {} {}", refusal.status, refusal.message);
        let config = self.config_path.display();
        let token = &self.token_id;
        let hint = match refusal.status {
            401 => Some(format!(
                "Authentication failed: check the token id '{token}' and its secret in [pve] token of '{config}'. \
                 The token must exist and not be expired (Datacenter → Permissions → API Tokens)."
            )),
            403 => Some(format!(
                "The token lacks Sys.Modify (or Sys.Audit) on '/'. Create a role and grant it to the token (and, with privilege separation, to its user):\n  \
                 pveum role add Fail2Ban --privs \"Sys.Audit Sys.Modify\"\n  \
                 pveum acl modify / --tokens '{token}' --roles Fail2Ban"
            )),
            _ if refusal.message.contains("no such IPSet") => Some(format!(
                "Create the IPSet '{ipset}' under Datacenter → Firewall → IPSet in the PVE GUI, or on a node:\n  \
                 pvesh create /cluster/firewall/ipset --name {ipset} --comment fail2ban"
            )),
            _ if refusal.message.contains("File too large") => Some(
                "The datacenter firewall file cluster.fw is full (1 MiB for all of it): shorten ban times, \
                 remove stale entries, or widen bans to networks."
                    .to_string(),
            ),
            _ => None,
        };
        match hint {
            Some(hint) => Failure::pve(message).hint(hint),
            None => Failure::pve(message),
        }
    }
}
