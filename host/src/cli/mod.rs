//! The command line: a drop-in for the old Perl script, options before or
//! after the operands. `--help`, the man pages and the README's reference
//! come from here.
//!
//! Self-contained: `cli` uses only clap and std, never the rest of the
//! crate, so that a build script can include it to generate man pages. The
//! commands map what it parses onto the runner's own types.

mod args;
mod leading;
mod sandbox;
mod script;

pub use args::{
    CrowdsecArgs, DEFAULT_CONFIG_PATH, DnsArgs, DocsArgs, Flush, InitArgs, IpsetOnly, PolicyArgs,
    PolicyCommand, SandboxDns, Status, Target, TrustArgs,
};
pub use sandbox::{Defaults, SandboxArgs, SandboxCommand, SandboxOptions};
pub use script::script_commands;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  PVE refused the request or could not be reached
  2  bad input or usage (nothing was sent to PVE)
  3  configuration error (config file, token, trust, policy module)";

/// Puts addresses that fail2ban bans into a Proxmox VE datacenter IPSet.
///
/// fail2pvefw adds a banned address to an IPSet at datacenter level through
/// the PVE REST API (API token, pinned or CA-verified TLS), so the firewall of
/// every node, VM and CT can drop it, and removes it when the ban ends. What
/// to do is decided by a sandboxed WebAssembly policy; the default one is
/// built in.
#[derive(Debug, Parser)]
#[command(name = "fail2pvefw", version, after_help = EXIT_CODES, after_long_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration file [default: /etc/fail2pvefw/config.toml]
    ///
    /// TOML with a [pve] table (host, token or token_file, fingerprint or
    /// ca_file, ipset) and a [state] table (dir). When not given,
    /// $FAIL2PVEFW_CONFIG is used, else /etc/fail2pvefw/config.toml.
    #[arg(long, global = true, value_name = "FILE", env = "FAIL2PVEFW_CONFIG", default_value = DEFAULT_CONFIG_PATH, hide_default_value = true)]
    pub config: PathBuf,

    /// Run in the foreground and report the real outcome
    ///
    /// Without it, ban and unban commit the event to the durable queue and
    /// return at once (a background process sends it); with it they wait for
    /// PVE and exit with the real outcome.
    #[arg(short = 'f', long, global = true)]
    pub foreground: bool,

    /// Check the node's certificate first; if it is not trusted, show it and ask
    ///
    /// As the old script's -m: runs the `trust` flow on a terminal, then goes
    /// on with the command. Without a terminal an untrusted certificate
    /// stops the run (exit 3).
    #[arg(short = 'm', long, global = true)]
    pub manual: bool,

    /// Only commit ban and unban events; leave sending to sync or the timer
    ///
    /// For setups where only the periodic `fail2pvefw sync` may talk to PVE.
    #[arg(long, global = true)]
    pub queue_only: bool,

    /// Run this policy module instead of the built-in one
    ///
    /// A WebAssembly component for the world in wit/policy.wit, built for
    /// wasm32-wasip2. Overrides `policy` in the configuration file.
    #[arg(long, global = true, value_name = "FILE.wasm")]
    pub policy: Option<PathBuf>,

    /// Say more: -v for what was done, -vv for every PVE call
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// How log lines on stderr look: text or json
    ///
    /// text (the default): "fail2pvefw: LEVEL: MESSAGE", one line each, as
    /// fail2ban's log and the journal show them. json: one JSON object per
    /// line with time, level, message and fields such as action, entry and
    /// ipset, for log shippers.
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    #[command(flatten)]
    leading: leading::Leading,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add an address or network to the IPSet
    ///
    /// Already being there is success. The entry's comment is
    /// "[YYYY/MM/DD HH:MM:SS] COMMENT f2p:INSTANCE/JAIL/EXPIRY" in local time.
    /// Without -f the event is committed to the durable queue and the command
    /// returns at once; a background drainer sends it. With -f it waits for
    /// PVE and exits with the real outcome.
    Ban(Target),
    /// Remove an address or network from the IPSet
    ///
    /// Removes exactly the entry `ban` stored for the same input
    /// (10.0.0.1/8 removes 10.0.0.0/8). Not being there is success.
    /// Queued like ban.
    Unban(Target),
    /// Keep the addresses of host names in an accept-list IPSet
    ///
    /// Resolves each NAME through the system's resolver (A and AAAA) and
    /// makes the IPSet agree: adds the addresses it lacks, removes this
    /// instance's entries of the name that it no longer resolves to. The
    /// entries carry our tag and the name, so manual entries and other
    /// instances' are never touched; nothing is written when nothing
    /// changed. A name that does not resolve is an error naming it (exit
    /// 1), and its entries stay. Goes through the queue like a ban and is
    /// sent at once; fail2pvefw-dns.timer runs it every 5 minutes. With
    /// [dns] never_ban_resolved (the default) the addresses are never banned.
    Dns(DnsArgs),
    /// Check that PVE is reachable and the IPSet exists (fail2ban's actionstart)
    Start(IpsetOnly),
    /// Check that the IPSet still exists (fail2ban's actioncheck)
    Check(IpsetOnly),
    /// Show the node's certificate and trust it from now on
    ///
    /// Connects for a TLS handshake only (no request, never the token), shows
    /// subject, issuer, validity and the SHA-256 fingerprint, asks on the
    /// terminal, then stores the fingerprint in the state directory
    /// (trusted-fingerprints), where later runs accept it for this host.
    Trust(TrustArgs),
    /// Send everything queued now, then make the IPSet agree with the bans
    ///
    /// Drains the queue (ignoring back-off), then reads the IPSet once:
    /// re-adds bans PVE lost, removes this instance's own entries whose ban
    /// has expired (even when fail2ban is gone). Entries without our tag, or
    /// with another instance's, are never touched. Run by the timer.
    Sync(IpsetOnly),
    /// Show the queue, the last error and the IPSet
    Status(Status),
    /// Check the set-up step by step and say how to fix what fails
    ///
    /// Checks that the configuration parses, that the token file is private,
    /// that each node is reachable with a trusted certificate and accepts
    /// the token, that the token holds Sys.Audit and Sys.Modify on '/', that
    /// the IPSet exists, that a datacenter rule drops it (or it is
    /// 'blacklist') and that the datacenter firewall is on. Prints one line
    /// per check, ✔ or ✘ with the fix, never the token's secret. Exits 0
    /// when all pass, 3 when a local check fails (the configuration file or
    /// the token file), else 1.
    Doctor(IpsetOnly),
    /// Write the configuration file, trust the node, create the IPSet
    ///
    /// Takes the values from the flags, asks on the terminal for the
    /// missing ones, writes the file (mode 0600; an existing one only with
    /// --force), shows the node's certificate and trusts it (as `trust`),
    /// offers to create the IPSet, and prints what to add to jail.local.
    /// Without a terminal, missing values are an error (exit 2).
    Init(InitArgs),
    /// fail2ban's actionflush: keep this jail's bans in PVE (default) or remove them
    Flush(Flush),
    /// Run as a resident service: the local API, the drainer, the periodic sync
    ///
    /// Holds what each run of the CLI rebuilds (the configuration, the warm
    /// policy, the open state database, a keep-alive HTTPS connection) and
    /// takes ban, unban, flush, start, check and status requests on a Unix
    /// socket ([serve] socket, default /run/fail2pvefw/fail2pvefw.sock, mode
    /// 0660, group [serve] group). A ban is answered once it is committed
    /// durably; the queue is drained as events arrive; `sync` runs every
    /// [serve] sync_interval seconds (300); /metrics is served on [metrics]
    /// listen (loopback only). `ban` and `unban` hand their event to it
    /// when it runs, and do the work themselves when it does not. SIGHUP
    /// reloads the configuration (a bad one keeps the old), SIGTERM stops
    /// after the call in flight. Run by fail2pvefw.service.
    Serve,
    /// Apply CrowdSec's decisions: a bouncer for the LAPI of [crowdsec]
    ///
    /// Pulls the LAPI's decision stream every update_frequency seconds,
    /// puts the decisions through the policy and the durable queue (holder
    /// `crowdsec`; one entry per address whoever else bans it), within
    /// [crowdsec] max_entries, the byte budget of cluster.fw and [pve]
    /// writes_per_second; fail2ban's bans go first. Keeps what is applied
    /// while the LAPI fails, retrying with back-off. Runs until stopped (the
    /// systemd unit fail2pvefw-crowdsec.service), or --once. Never prints
    /// the bouncer key.
    Crowdsec(CrowdsecArgs),
    /// Drain the queue in the background (started by ban and unban)
    #[command(hide = true)]
    Drain,
    /// Write the man page and shell completions into a folder (packaging)
    #[command(hide = true)]
    GenerateDocs(DocsArgs),
    /// Try a policy on an in-memory IPSet: no PVE, no config, no token
    ///
    /// Runs ban, unban, start or check with the policy (the built-in one, or
    /// --policy FILE.wasm) against an IPSet held in memory, then prints each
    /// PVE call the policy made and the IPSet (and the policy's store)
    /// afterwards. Several commands run one after the other in one run, so
    /// a policy that counts shows what it does; --store, --seed and --save
    /// carry the store and the IPSet over to the next run. `dns` (alone)
    /// shows the host's own writes for host names. Touches no network (but
    /// a `dns` lookup without --resolve) and no state; the configuration
    /// file is not read.
    /// Example: fail2pvefw sandbox ban 203.0.113.1 ban 203.0.113.2 unban 203.0.113.1
    Sandbox(SandboxArgs),
    /// Work with policy modules: `policy check FILE.wasm`, `policy new NAME`
    Policy(PolicyArgs),
}

/// How log lines look (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `fail2pvefw: LEVEL: MESSAGE`, for fail2ban's log and the journal.
    #[default]
    Text,
    /// One JSON object per line: time, level, message and fields.
    Json,
}

/// The command line of this process; a usage error ends it (exit 2), as
/// `--help` and `--version` do (exit 0).
pub fn parse() -> Cli {
    try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// A command line, `argv[0]` first.
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args)?.settle()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn try_parse(args: &[&str]) -> Result<Cli, clap::Error> {
        try_parse_from(std::iter::once("fail2pvefw").chain(args.iter().copied()))
    }

    fn parse(args: &[&str]) -> Cli {
        try_parse(args).unwrap()
    }

    fn target(cli: Cli) -> Target {
        match cli.command {
            Command::Ban(t) | Command::Unban(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_may_follow_the_operands() {
        let cli = parse(&[
            "ban",
            "203.0.113.7",
            "-c",
            "sshd",
            "-f",
            "--config",
            "/x.toml",
            "-i",
            "f2b",
        ]);
        assert!(cli.foreground);
        assert_eq!(cli.config, PathBuf::from("/x.toml"));
        let Command::Ban(t) = cli.command else {
            panic!()
        };
        assert_eq!(
            (t.ip.as_str(), t.comment.as_deref(), t.ipset.as_deref()),
            ("203.0.113.7", Some("sshd"), Some("f2b"))
        );
    }

    #[test]
    fn options_may_precede_the_command() {
        let cli = parse(&["--config", "/x.toml", "-f", "unban", "10.0.0.0/8"]);
        assert!(cli.foreground);
        assert!(matches!(cli.command, Command::Unban(_)));
    }

    // See: issue 13, item 0
    #[test]
    fn the_old_scripts_options_may_precede_the_command() {
        let t = target(parse(&[
            "-f",
            "-i",
            "fail2ban",
            "-c",
            "hello",
            "ban",
            "192.0.2.60",
        ]));
        assert_eq!(
            (t.ipset.as_deref(), t.comment.as_deref()),
            (Some("fail2ban"), Some("hello"))
        );
        let cli = parse(&["-fm", "-t", "1700000000", "unban", "192.0.2.61"]);
        assert!(cli.foreground && cli.manual);
        assert_eq!(target(cli).time, Some(1_700_000_000.0));
        let t = target(parse(&["--ipset", "a", "--time", "5", "ban", "192.0.2.1"]));
        assert_eq!((t.ipset.as_deref(), t.time), (Some("a"), Some(5.0)));
        let cli = parse(&["-i", "f2b", "status"]);
        assert!(
            matches!(cli.command, Command::Status(Status { ipset: Some(ref i), .. }) if i == "f2b")
        );
        let cli = parse(&["-i", "f2b", "-c", "x", "sandbox", "ban", "192.0.2.1"]);
        let Command::Sandbox(args) = cli.command else {
            panic!()
        };
        let [SandboxCommand::Ban(t)] = &args.commands[..] else {
            panic!("{:?}", args.commands)
        };
        assert_eq!(
            (t.ipset.as_deref(), t.comment.as_deref()),
            (Some("f2b"), Some("x"))
        );
    }

    // See: issue 13, item 0
    #[test]
    fn an_option_after_the_command_wins_over_one_before() {
        let t = target(parse(&["-i", "before", "ban", "192.0.2.1", "-i", "after"]));
        assert_eq!(t.ipset.as_deref(), Some("after"));
    }

    // See: issue 13, item 0
    #[test]
    fn an_option_the_command_lacks_is_a_usage_error_naming_it() {
        for (args, option) in [
            (&["-c", "x", "status"][..], "-c/--comment"),
            (&["-t", "1", "start"][..], "-t/--timestamp"),
            (&["-i", "x", "flush"][..], "-i/--ipset"),
            (&["-i", "x", "trust"][..], "-i/--ipset"),
            (&["-c", "x", "sandbox", "check"][..], "-c/--comment"),
        ] {
            let err = try_parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            let text = err.to_string();
            assert!(text.contains(option), "{args:?}: {text}");
            assert!(text.contains("does not apply to"), "{text}");
        }
    }

    // See: issue 13, item 1
    #[test]
    fn the_old_scripts_dns_line_parses() {
        let cli = parse(&["-i", "trusted", "dns", "home.example.net"]);
        let Command::Dns(d) = cli.command else {
            panic!()
        };
        assert_eq!(d.names, ["home.example.net"]);
        assert_eq!(d.ipset.as_deref(), Some("trusted"));
        let cli = parse(&["-f", "dns", "a.test", "b.test", "-i", "x", "--remove"]);
        assert!(cli.foreground);
        let Command::Dns(d) = cli.command else {
            panic!()
        };
        assert_eq!(
            (d.names.len(), d.ipset.as_deref(), d.remove),
            (2, Some("x"), true)
        );
        let Command::Dns(d) = parse(&["dns"]).command else {
            panic!()
        };
        assert!(d.names.is_empty() && d.ipset.is_none());
        // The old script's dns took no comment or time: the name is the comment.
        let err = try_parse(&["-c", "x", "dns", "a.test"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("-c/--comment"), "{err}");
        let cli = parse(&[
            "-i",
            "trusted",
            "sandbox",
            "dns",
            "a.test",
            "--resolve",
            "a.test=192.0.2.1,2001:db8::1",
        ]);
        let Command::Sandbox(args) = cli.command else {
            panic!()
        };
        let [SandboxCommand::Dns(d)] = &args.commands[..] else {
            panic!("{:?}", args.commands)
        };
        assert_eq!(d.dns.ipset.as_deref(), Some("trusted"));
        assert_eq!(d.resolve, ["a.test=192.0.2.1,2001:db8::1"]);
    }

    // See: issue 15, deliverable 6
    #[test]
    fn the_sandbox_takes_several_commands_and_options_before_or_after_them() {
        let cli = parse(&[
            "sandbox",
            "-i",
            "x",
            "ban",
            "192.0.2.1",
            "ban",
            "192.0.2.2",
            "-i",
            "y",
            "unban",
            "192.0.2.1",
            "--store",
            "s.json",
            "--policy",
            "p.wasm",
        ]);
        assert_eq!(cli.policy, Some(PathBuf::from("p.wasm")));
        let Command::Sandbox(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.options.store, Some(PathBuf::from("s.json")));
        let ipsets: Vec<(&str, Option<&str>)> = args
            .commands
            .iter()
            .map(|c| (c.name(), c.ipset()))
            .collect();
        assert_eq!(
            ipsets,
            [("ban", Some("x")), ("ban", Some("y")), ("unban", Some("x"))]
        );
        let cli = parse(&["-i", "before", "sandbox", "-i", "after", "check"]);
        let Command::Sandbox(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.commands[0].ipset(), Some("after"));
        assert!(try_parse(&["sandbox"]).is_err());
        assert!(try_parse(&["sandbox", "--script", "-"]).is_ok());
        assert_eq!(
            try_parse(&["sandbox", "frobnicate"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn fail2ban_tags_parse() {
        let cli = parse(&[
            "ban",
            "192.0.2.1",
            "-t",
            "1700000000.25",
            "--jail",
            "sshd",
            "--bantime",
            "-1",
            "--failures",
            "3",
            "--restored",
            "0",
        ]);
        let Command::Ban(t) = cli.command else {
            panic!()
        };
        assert_eq!(t.time, Some(1_700_000_000.25));
        assert_eq!(t.bantime, Some(-1));
        assert_eq!(t.failures, Some(3));
        assert_eq!(t.restored, Some(false));
        let cli = parse(&["ban", "192.0.2.1", "--restored"]);
        let Command::Ban(t) = cli.command else {
            panic!()
        };
        assert_eq!(t.restored, Some(true));
    }

    #[test]
    fn trust_and_manual_parse() {
        let cli = parse(&["trust", "--yes", "--config", "/x.toml"]);
        assert!(matches!(
            cli.command,
            Command::Trust(TrustArgs { yes: true })
        ));
        let cli = parse(&["-m", "ban", "192.0.2.1"]);
        assert!(cli.manual);
    }

    #[test]
    fn help_documents_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("3  configuration error"), "{help}");
    }
}
