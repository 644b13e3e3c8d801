//! The arguments of each subcommand, and the default configuration path
//! they share with the global `--config`. Like the rest of `cli`, it uses
//! only clap and std.

use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Where the configuration is when neither `--config` nor
/// `$FAIL2PVEFW_CONFIG` says; where `init` writes it by default.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/fail2pvefw/config.toml";

#[derive(Debug, Args)]
pub struct Status {
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,

    /// Prometheus text exposition (format 0.0.4): counters and gauges
    #[arg(long, conflicts_with = "json")]
    pub prometheus: bool,

    /// The datacenter IPSet [default: `ipset` from the config, else fail2ban]
    #[arg(short = 'i', long, value_name = "IPSET")]
    pub ipset: Option<String>,
}

#[derive(Debug, Args)]
pub struct Flush {
    /// Only this jail's bans (fail2ban's <name>) [default: all]
    #[arg(long, value_name = "NAME", conflicts_with = "crowdsec")]
    pub jail: Option<String>,

    /// CrowdSec's entries instead of fail2ban's (stop `fail2pvefw crowdsec` first)
    #[arg(long)]
    pub crowdsec: bool,

    /// Remove the bans from PVE instead of keeping them
    ///
    /// By default bans stay in PVE across a fail2ban restart (with
    /// norestored = 1 nothing is re-sent at start); with --remove, this
    /// jail's entries are queued for removal.
    #[arg(long)]
    pub remove: bool,
}

#[derive(Debug, Args)]
pub struct CrowdsecArgs {
    /// One pull, apply it, exit (for tests and timers)
    ///
    /// Pulls once (a full pull when the state says so, else what changed),
    /// queues the bans and unbans, sends the queue for at most --drain-for
    /// seconds and exits: 0 done, 1 the LAPI or PVE could not be reached,
    /// 3 a configuration error or a key the LAPI refuses. Without it the
    /// bouncer runs until stopped.
    #[arg(long)]
    pub once: bool,

    /// With --once: send the queue for at most this long [default: 60]
    ///
    /// At [pve] writes_per_second, what is left stays queued for the next
    /// run, the service or `fail2pvefw sync`.
    #[arg(long, value_name = "SECS", default_value_t = 60.0, requires = "once")]
    pub drain_for: f64,
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Trust without asking (check the fingerprint against the PVE GUI first)
    #[arg(short = 'y', long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct Target {
    /// The IPv4/IPv6 address or CIDR network, e.g. 203.0.113.7 or 2001:db8::/64
    #[arg(value_name = "IP|CIDR", allow_hyphen_values = true)]
    pub ip: String,

    /// Text for the entry's comment, after the date
    ///
    /// By default built from --jail and --failures, else "Added by fail2pvefw".
    /// A '%' is just a character; control characters are removed.
    #[arg(short = 'c', long, value_name = "COMMENT")]
    pub comment: Option<String>,

    /// The datacenter IPSet [default: `ipset` from the config, else fail2ban]
    #[arg(short = 'i', long, value_name = "IPSET")]
    pub ipset: Option<String>,

    /// When the ban began, in Unix seconds (fail2ban's <time>) [default: now]
    #[arg(
        short = 't',
        long = "timestamp",
        visible_alias = "time",
        value_name = "EPOCH"
    )]
    pub time: Option<f64>,

    /// The jail that banned it (fail2ban's <name>)
    #[arg(long, value_name = "NAME")]
    pub jail: Option<String>,

    /// The ban's length in seconds (fail2ban's <bantime>); -1 is forever
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub bantime: Option<i64>,

    /// How many failures led to the ban (fail2ban's <failures>)
    #[arg(long, value_name = "N")]
    pub failures: Option<u32>,

    /// fail2ban re-applies a ban it had stored (fail2ban's <restored>: 0 or 1)
    #[arg(long, value_name = "0|1", num_args = 0..=1, default_missing_value = "1", value_parser = parse_flag)]
    pub restored: Option<bool>,
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// Host names to keep [default: `names` of [dns] in the config]
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    /// The accept-list IPSet [default: `ipset` of [dns], else [pve] ipset, which is refused]
    ///
    /// An IPSet a firewall rule ACCEPTs. It must not be where bans go:
    /// [pve] ipset (the fallback when neither -i nor [dns] ipset is given),
    /// or an IPSet this state holds bans in, is refused (exit 2).
    #[arg(short = 'i', long, value_name = "IPSET")]
    pub ipset: Option<String>,

    /// Stop keeping the names: remove their entries, unless another holds them
    #[arg(long)]
    pub remove: bool,
}

#[derive(Debug, Args)]
pub struct SandboxDns {
    #[command(flatten)]
    pub dns: DnsArgs,

    /// Answer NAME's lookup with these addresses, not the system's resolver (repeatable)
    ///
    /// `--resolve home.example.net=198.51.100.7,2001:db8::7`; `NAME=` with
    /// no address is a lookup that fails. Names not given here are
    /// resolved for real.
    #[arg(long, value_name = "NAME=ADDR,…")]
    pub resolve: Vec<String>,
}

#[derive(Debug, Args)]
pub struct IpsetOnly {
    /// The datacenter IPSet [default: `ipset` from the config, else fail2ban]
    #[arg(short = 'i', long, value_name = "IPSET")]
    pub ipset: Option<String>,
}

fn parse_flag(text: &str) -> Result<bool, String> {
    match text {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" | "" => Ok(false),
        other => Err(format!("'{other}' is not 0 or 1")),
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The PVE node, `host` or `host:port`; repeat it for more nodes of the cluster
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,

    /// The API token, USER@REALM!TOKENID=SECRET
    ///
    /// Written into the 0600 configuration file. A command line can be seen
    /// by other users and lands in shell history: prefer --token-file, or
    /// leave both out and type it at the prompt.
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,

    /// A file holding the token, referenced from the configuration
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// The datacenter IPSet [default: fail2ban]
    #[arg(long, value_name = "IPSET")]
    pub ipset: Option<String>,

    /// Where state lives [default: /var/lib/fail2pvefw]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// The node certificate's SHA-256 fingerprint, as the PVE GUI shows it
    ///
    /// Without it (and without --ca-file) the certificate is shown and, on
    /// yes (or --yes), pinned as `fail2pvefw trust` does.
    #[arg(long, value_name = "SHA256", conflicts_with = "ca_file")]
    pub fingerprint: Option<String>,

    /// A copy of the cluster CA, /etc/pve/pve-root-ca.pem
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// The configuration file to write
    #[arg(short = 'o', long, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH)]
    pub output: PathBuf,

    /// Replace an existing configuration file
    #[arg(long)]
    pub force: bool,

    /// Trust the node's certificate without asking (compare its fingerprint first)
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Create the IPSet if it does not exist, without asking (needs Sys.Modify)
    #[arg(long)]
    pub create_ipset: bool,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check that FILE.wasm is a policy component; list its imports, exports and identity
    ///
    /// Needs no configuration. Exit 0 when the runner can use it, 3 when not.
    Check {
        #[arg(value_name = "FILE.wasm")]
        file: PathBuf,
    },
    /// Write a new policy crate NAME on the SDK, ready to test and build
    ///
    /// Writes DIR/NAME (DIR defaults to the current folder): Cargo.toml, a
    /// src/lib.rs implementing every export with a native test, and a
    /// README with the build command (cargo build --target wasm32-wasip2
    /// --release). The SDK and the PVE model its test host needs are
    /// written beside it (NAME/vendor/), from this binary: no source tree
    /// or network is needed but crates.io for the SDK's dependencies. An
    /// existing NAME is left alone (exit 2).
    New {
        /// The crate's name, also the policy's identity: letters, digits, '-' and '_'
        #[arg(value_name = "NAME")]
        name: String,

        /// Where to create NAME/ [default: the current folder]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,

        /// Depend on the SDK of a checkout (its sdk/ folder) instead of vendoring it
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DocsArgs {
    /// The folder to write `man/` and `completions/` into
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}
