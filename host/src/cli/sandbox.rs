//! `fail2pvefw sandbox`'s command line: its options, then one or more
//! commands (`sandbox ban A ban B unban A`), or a script of them, one per
//! line (`--script FILE`, `-` for stdin). Options may come before the
//! commands, between them or after them, as in the main CLI; `-i`, `-c` and
//! `-t` before the first command apply to every command that takes them,
//! and a command's own win. Like the rest of `cli`, it uses only clap and std.

use super::{IpsetOnly, SandboxDns, Target};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[command(flatten)]
    pub options: SandboxOptions,

    /// The IPSet of every command [default: fail2ban]
    #[arg(short = 'i', long = "ipset", value_name = "IPSET")]
    pub ipset: Option<String>,

    /// The comment of every ban and unban
    #[arg(short = 'c', long = "comment", value_name = "COMMENT")]
    pub comment: Option<String>,

    /// When every ban and unban began, in Unix seconds [default: now]
    #[arg(
        short = 't',
        long = "timestamp",
        visible_alias = "time",
        value_name = "EPOCH"
    )]
    pub time: Option<f64>,

    /// The commands: ban IP, unban IP, start, check, each with its options
    ///
    /// One after the other in one run, against the same in-memory PVE and
    /// store: `sandbox ban 203.0.113.1 ban 203.0.113.2 unban 203.0.113.1`.
    /// A command stops the run when it fails (with its exit code).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..
    )]
    pub words: Vec<String>,

    /// The commands, once parsed (`Cli::settle`).
    #[arg(skip)]
    pub commands: Vec<SandboxCommand>,
}

/// The options of the sandbox itself, taken before, between or after its
/// commands.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Sandbox options (before, between or after the commands)")]
pub struct SandboxOptions {
    /// Start from this cluster.fw [default: one empty IPSet]
    ///
    /// Reads a datacenter firewall file (/etc/pve/firewall/cluster.fw) as
    /// PVE reads it: its IPSets, and its options, aliases and rules too.
    /// Without it the sandbox holds one empty IPSet, named by -i or
    /// `fail2ban`.
    #[arg(long, value_name = "FILE", global = true)]
    pub seed: Option<PathBuf>,

    /// Write the whole cluster.fw afterwards, as PVE writes it, to FILE
    ///
    /// Pass the same file to --seed next time to go on from there.
    #[arg(long, value_name = "FILE", global = true)]
    pub save: Option<PathBuf>,

    /// Keep the policy's store in FILE (JSON), read before and written after
    ///
    /// Without it the store starts empty and is forgotten; with it a policy
    /// that counts (an escalation) goes on where the last run stopped, as
    /// --seed and --save do for the IPSet.
    #[arg(long, value_name = "FILE", global = true)]
    pub store: Option<PathBuf>,

    /// A [policy_settings] value the policy reads as `policy.KEY` (repeatable)
    #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = parse_setting, global = true)]
    pub settings: Vec<(String, String)>,

    /// Run the commands in FILE too, one per line (`-`: standard input)
    ///
    /// After those on the command line. Words are split as a shell would
    /// (quotes group, a backslash escapes); empty lines and lines starting
    /// with `#` are skipped.
    #[arg(long, value_name = "FILE", global = true)]
    pub script: Option<PathBuf>,

    /// A network never to ban, as [rules] never_ban (repeatable)
    #[arg(long = "never-ban", value_name = "NET", global = true)]
    pub never_ban: Vec<String>,

    /// Widen IPv6 bans to this prefix length, as [rules] ipv6_prefix
    #[arg(long, value_name = "LEN", global = true)]
    pub ipv6_prefix: Option<u8>,

    /// A PVE node's address, which bans must never cover, as [pve] host
    #[arg(long, value_name = "ADDR", global = true)]
    pub pve_host: Vec<IpAddr>,
}

impl SandboxOptions {
    /// Takes what `later` says: a later value wins, lists add up.
    fn merge(&mut self, later: SandboxOptions) {
        let SandboxOptions {
            seed,
            save,
            store,
            settings,
            script,
            never_ban,
            ipv6_prefix,
            pve_host,
        } = later;
        self.seed = seed.or(self.seed.take());
        self.save = save.or(self.save.take());
        self.store = store.or(self.store.take());
        self.script = script.or(self.script.take());
        self.ipv6_prefix = ipv6_prefix.or(self.ipv6_prefix);
        self.settings.extend(settings);
        self.never_ban.extend(never_ban);
        self.pve_host.extend(pve_host);
    }
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Add an address or network to the in-memory IPSet
    Ban(Target),
    /// Remove an address or network from the in-memory IPSet
    Unban(Target),
    /// Check the in-memory IPSet exists (fail2ban's actionstart)
    Start(IpsetOnly),
    /// Check the in-memory IPSet still exists (fail2ban's actioncheck)
    Check(IpsetOnly),
    /// Show what `dns NAME…` would do to the in-memory IPSet (-i names the
    /// accept list); runs alone, as the host's own writes (no policy)
    Dns(SandboxDns),
}

impl SandboxCommand {
    pub fn name(&self) -> &'static str {
        match self {
            SandboxCommand::Ban(_) => "ban",
            SandboxCommand::Unban(_) => "unban",
            SandboxCommand::Start(_) => "start",
            SandboxCommand::Check(_) => "check",
            SandboxCommand::Dns(_) => "dns",
        }
    }

    pub fn ipset(&self) -> Option<&str> {
        match self {
            SandboxCommand::Ban(t) | SandboxCommand::Unban(t) => t.ipset.as_deref(),
            SandboxCommand::Start(i) | SandboxCommand::Check(i) => i.ipset.as_deref(),
            SandboxCommand::Dns(d) => d.dns.ipset.as_deref(),
        }
    }

    /// `ban 203.0.113.1`, for the sandbox's output.
    pub fn describe(&self) -> String {
        match self {
            SandboxCommand::Ban(t) | SandboxCommand::Unban(t) => {
                format!("{} {}", self.name(), t.ip)
            }
            SandboxCommand::Start(_) | SandboxCommand::Check(_) => self.name().to_string(),
            SandboxCommand::Dns(d) => format!("dns {}", d.dns.names.join(" ")),
        }
    }
}

/// One sandbox command, with the sandbox's options after it and the main
/// CLI's `--policy` and `-v`, which it took after the command before.
#[derive(Debug, Parser)]
#[command(
    name = "fail2pvefw sandbox",
    bin_name = "fail2pvefw sandbox",
    no_binary_name = true
)]
struct One {
    #[command(flatten)]
    options: SandboxOptions,

    #[command(flatten)]
    trailing: Trailing,

    #[command(subcommand)]
    command: SandboxCommand,
}

/// The main CLI's global options a sandbox command may be followed by.
#[derive(Debug, Default, Args)]
pub struct Trailing {
    #[arg(long, value_name = "FILE.wasm", global = true, hide = true)]
    pub policy: Option<PathBuf>,

    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count, hide = true)]
    pub verbose: u8,
}

impl SandboxArgs {
    /// Parses the commands of the command line, with `leading` (`-i`, `-c`,
    /// `-t` of the main CLI, before `sandbox`) and the sandbox's own as
    /// defaults of each. Returns what the commands were followed by of the
    /// main CLI's options.
    pub(super) fn settle(&mut self, leading: Defaults) -> Result<Trailing, clap::Error> {
        self.ipset = self.ipset.take().or(leading.ipset);
        self.comment = self.comment.take().or(leading.comment);
        self.time = self.time.or(leading.time);
        let (commands, options, trailing) = parse_words(&std::mem::take(&mut self.words))?;
        self.options.merge(options);
        self.commands = commands;
        if self.commands.is_empty() && self.options.script.is_none() {
            return Err(super::Cli::command().error(
                clap::error::ErrorKind::MissingSubcommand,
                "'sandbox' needs a command (ban IP, unban IP, start or check) or --script FILE",
            ));
        }
        if self.commands.len() > 1
            && self
                .commands
                .iter()
                .any(|c| matches!(c, SandboxCommand::Dns(_)))
        {
            return Err(super::Cli::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                "'sandbox dns' runs alone: it shows the host's own writes, not a policy's",
            ));
        }
        let takes_target = self.options.script.is_some()
            || self
                .commands
                .iter()
                .any(|c| matches!(c, SandboxCommand::Ban(_) | SandboxCommand::Unban(_)));
        for (given, option) in [
            (self.comment.is_some(), "-c/--comment"),
            (self.time.is_some(), "-t/--timestamp"),
        ] {
            if given && !takes_target {
                let name = format!(
                    "sandbox {}",
                    self.commands.first().map_or("", SandboxCommand::name)
                );
                return Err(super::Cli::command().error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "the option '{option}' does not apply to '{name}': it is an option of \
                         ban and unban"
                    ),
                ));
            }
        }
        let defaults = self.defaults();
        for command in &mut self.commands {
            defaults.apply(command);
        }
        Ok(trailing)
    }

    /// The sandbox's `-i`, `-c`, `-t`: each command's own wins.
    pub fn defaults(&self) -> Defaults {
        Defaults {
            ipset: self.ipset.clone(),
            comment: self.comment.clone(),
            time: self.time,
        }
    }
}

/// Options that apply to every command unless it gives its own.
#[derive(Clone, Debug, Default)]
pub struct Defaults {
    pub ipset: Option<String>,
    pub comment: Option<String>,
    pub time: Option<f64>,
}

impl Defaults {
    pub fn apply(&self, command: &mut SandboxCommand) {
        match command {
            SandboxCommand::Ban(t) | SandboxCommand::Unban(t) => {
                if t.ipset.is_none() {
                    t.ipset.clone_from(&self.ipset);
                }
                if t.comment.is_none() {
                    t.comment.clone_from(&self.comment);
                }
                t.time = t.time.or(self.time);
            }
            SandboxCommand::Start(i) | SandboxCommand::Check(i) => {
                if i.ipset.is_none() {
                    i.ipset.clone_from(&self.ipset);
                }
            }
            SandboxCommand::Dns(d) => {
                if d.dns.ipset.is_none() {
                    d.dns.ipset.clone_from(&self.ipset);
                }
            }
        }
    }
}

/// The commands in `words`, one after the other, with the sandbox options
/// among them and the main CLI's options after them.
fn parse_words(
    words: &[String],
) -> Result<(Vec<SandboxCommand>, SandboxOptions, Trailing), clap::Error> {
    let mut commands = Vec::new();
    let mut options = SandboxOptions::default();
    let mut trailing = Trailing::default();
    for segment in split(words) {
        let one = parse_full(&segment)?;
        options.merge(one.options);
        trailing.policy = one.trailing.policy.or(trailing.policy);
        trailing.verbose += one.trailing.verbose;
        commands.push(one.command);
    }
    Ok((commands, options, trailing))
}

/// One command with what follows it; the script takes only the command.
pub(super) fn parse_one(segment: &[String]) -> Result<SandboxCommand, clap::Error> {
    parse_full(segment).map(|one| one.command)
}

fn parse_full(segment: &[String]) -> Result<One, clap::Error> {
    let matches = One::command().try_get_matches_from(segment)?;
    One::from_arg_matches(&matches)
}

/// Cuts `words` where a command name starts a new command: a name that
/// is not the value of the option before it (`-c ban` is a comment).
pub(super) fn split(words: &[String]) -> Vec<Vec<String>> {
    let names: Vec<String> = SandboxCommand::augment_subcommands(clap::Command::new("x"))
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    let valued = value_options();
    let mut segments: Vec<Vec<String>> = Vec::new();
    let mut after_option = false;
    for word in words {
        if segments.is_empty() || (names.contains(word) && !after_option) {
            segments.push(Vec::new());
        }
        segments
            .last_mut()
            .expect("pushed above")
            .push(word.clone());
        after_option = valued.contains(word);
    }
    segments
}

/// Every spelling of an option of a sandbox command (or of the sandbox)
/// that takes a value in the next word: `-c`, `--comment`, `--seed`, ….
fn value_options() -> Vec<String> {
    let mut cmd = One::command();
    // Settles each argument's number of values.
    cmd.build();
    let mut spellings = Vec::new();
    let args = cmd
        .get_arguments()
        .chain(cmd.get_subcommands().flat_map(|c| c.get_arguments()));
    for arg in args {
        let takes = arg
            .get_num_args()
            .is_some_and(|n| n.min_values() > 0 && n.takes_values());
        if !takes || arg.is_positional() {
            continue;
        }
        spellings.extend(
            arg.get_short_and_visible_aliases()
                .into_iter()
                .flatten()
                .map(|c| format!("-{c}")),
        );
        spellings.extend(
            arg.get_long_and_visible_aliases()
                .into_iter()
                .flatten()
                .map(|l| format!("--{l}")),
        );
    }
    spellings
}

/// `KEY=VALUE`; a `policy.` before KEY is dropped (it is a
/// `[policy_settings]` key).
fn parse_setting(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' is not KEY=VALUE"))?;
    let key = key.trim();
    let key = key.strip_prefix("policy.").unwrap_or(key);
    if key.is_empty() {
        return Err(format!("'{text}' has no key before '='"));
    }
    Ok((key.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn commands_are_cut_at_command_names_that_are_no_option_value() {
        let segments = split(&words(
            "ban 192.0.2.1 -c ban ban 192.0.2.2 --jail unban unban 192.0.2.1 start",
        ));
        let shown: Vec<String> = segments.iter().map(|s| s.join(" ")).collect();
        assert_eq!(
            shown,
            [
                "ban 192.0.2.1 -c ban",
                "ban 192.0.2.2 --jail unban",
                "unban 192.0.2.1",
                "start"
            ]
        );
        // `--restored` takes a value only when one is given.
        assert_eq!(split(&words("ban a --restored ban b")).len(), 2);
    }

    #[test]
    fn sandbox_options_and_the_policy_may_follow_the_commands() {
        let (commands, options, trailing) = parse_words(&words(
            "ban 192.0.2.1 --seed fw --setting threshold=3 ban 192.0.2.2 -c hi --setting policy.window=60 --policy x.wasm -v",
        ))
        .unwrap();
        assert_eq!(commands.len(), 2);
        assert_eq!(options.seed, Some(PathBuf::from("fw")));
        assert_eq!(
            options.settings,
            [
                ("threshold".to_string(), "3".to_string()),
                ("window".to_string(), "60".to_string())
            ]
        );
        assert_eq!(trailing.policy, Some(PathBuf::from("x.wasm")));
        assert_eq!(trailing.verbose, 1);
        let SandboxCommand::Ban(t) = &commands[1] else {
            panic!()
        };
        assert_eq!(
            (t.ip.as_str(), t.comment.as_deref()),
            ("192.0.2.2", Some("hi"))
        );
    }

    #[test]
    fn settings_are_key_value() {
        assert_eq!(
            parse_setting("threshold=3"),
            Ok(("threshold".into(), "3".into()))
        );
        assert_eq!(parse_setting("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_setting("threshold").is_err());
        assert!(parse_setting("=3").is_err());
    }
}
