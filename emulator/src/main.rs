//! `pve-emulator`: a stand-in Proxmox VE datacenter-IPSet API on HTTPS, for
//! trying fail2pvefw without a cluster. Serves until killed (Ctrl-C/SIGTERM).
//! With `--cluster-fw FILE` it keeps `cluster.fw` in that file as a node
//! does: start from a copy of a real cluster's file, and read back exactly
//! what PVE would have written.

use pve_emulator::{DEMO_SECRET, DEMO_TOKEN_ID, Emulator, Options, Token};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const USAGE: &str = "\
usage: pve-emulator [--listen ADDR:PORT] [--token 'USER@REALM!NAME=SECRET']...
                    [--ipset NAME] [--cluster-fw FILE] [--write-config PATH] [--state-dir DIR]
                    [--write-ca PATH] [--auth-delay-ms N] [--legacy-errors] [--quiet]

  --listen        address to serve on (default 127.0.0.1:8006)
  --token         an accepted API token with Sys.Audit and Sys.Modify
                  (default: a fixed demo token); may be repeated
  --ipset         the (initially empty) ipset to create (default fail2ban)
  --cluster-fw    keep /etc/pve/firewall/cluster.fw in FILE, as a PVE node does:
                  read at start, rewritten whole after every write (temporary
                  file, then rename), removed when PVE would delete it. If FILE
                  does not exist it is created with --ipset, a DROP rule on it
                  and the firewall enabled; if it does, it is used as it is
                  (default: in memory, with that same content)
  --write-config  write a fail2pvefw config for this emulator (mode 0600)
  --state-dir     the [state] dir written into that config
                  (default: fail2pvefw-state next to the config)
  --write-ca      write the CA certificate (PEM) that signed the server's, for curl --cacert
  --auth-delay-ms delay before each 401 (default 3000, as PVE)
  --legacy-errors omit \"message\" from error bodies (PVE before 8.3)
  --quiet         do not log requests to stderr";

struct Args {
    opts: Options,
    ipset: String,
    config: Option<PathBuf>,
    state_dir: Option<String>,
    ca: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut opts = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 8006)),
        log_requests: true,
        tokens: Vec::new(),
        ..Options::default()
    };
    let (mut ipset, mut config, mut state_dir) = ("fail2ban".to_string(), None, None);
    let mut ca = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => opts.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--token" => {
                let v = value()?;
                let v = v.strip_prefix("PVEAPIToken=").unwrap_or(&v);
                let (id, secret) = v
                    .rsplit_once('=')
                    .ok_or("--token wants USER@REALM!NAME=SECRET")?;
                opts.tokens.push(Token::new(id, secret));
            }
            "--ipset" => ipset = value()?,
            "--cluster-fw" => opts.cluster_fw_file = Some(PathBuf::from(value()?)),
            "--write-config" => config = Some(PathBuf::from(value()?)),
            "--state-dir" => state_dir = Some(value()?),
            "--write-ca" => ca = Some(PathBuf::from(value()?)),
            "--auth-delay-ms" => {
                let ms = value()?
                    .parse()
                    .map_err(|e| format!("--auth-delay-ms: {e}"))?;
                opts.auth_delay = Duration::from_millis(ms);
            }
            "--legacy-errors" => opts.legacy_errors = true,
            "--quiet" => opts.log_requests = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    if opts.tokens.is_empty() {
        opts.tokens.push(Token::new(DEMO_TOKEN_ID, DEMO_SECRET));
    }
    if !pve_emulator::cidr::is_name(&ipset) || ipset.len() > 64 {
        return Err(format!("--ipset: '{ipset}' is not a valid ipset name"));
    }
    opts.ipsets = vec![(ipset.clone(), Vec::new())];
    // A cluster set up as the README says: a DROP rule on the set, the
    // datacenter firewall on (so `fail2pvefw doctor` passes against it).
    opts.rules = vec![format!("IN DROP -source +dc/{ipset} -log nolog")];
    opts.firewall_enable = Some(true);
    Ok(Args {
        opts,
        ipset,
        config,
        state_dir,
        ca,
    })
}

fn write_config(emu: &Emulator, token: &Token, args: &Args, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let state = match &args.state_dir {
        Some(d) => d.clone(),
        None => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let dir = std::path::absolute(dir)?;
            dir.join("fail2pvefw-state").display().to_string()
        }
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode through open(); make it private anyway.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(emu.config_toml(token, &args.ipset, &state).as_bytes())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pve-emulator: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let token = args.opts.tokens[0].clone();
    let emu = match Emulator::try_start(args.opts.clone()) {
        Ok(emu) => emu,
        Err(e) => {
            eprintln!("pve-emulator: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "pve-emulator listening on https://{}/api2/json",
        emu.host_port()
    );
    println!("fingerprint: {}", emu.fingerprint());
    println!("token:       {}={}", token.id, token.secret);
    println!("ipset:       {}", args.ipset);
    if let Some(path) = &args.opts.cluster_fw_file {
        println!("cluster.fw:  {}", path.display());
    }
    if let Some(path) = &args.ca {
        if let Err(e) = std::fs::write(path, emu.ca_pem()) {
            eprintln!("pve-emulator: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("ca:          {}", path.display());
    }
    if let Some(path) = &args.config {
        if let Err(e) = write_config(&emu, &token, &args, path) {
            eprintln!("pve-emulator: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("config:      {}", path.display());
    }
    println!(
        "try:         curl -k -H 'Authorization: {}' {}/cluster/firewall/ipset/{}",
        token.header_value(),
        emu.base_url(),
        args.ipset
    );
    let _ = std::io::stdout().flush();
    // SIGINT and SIGTERM keep their default action: the process ends.
    loop {
        std::thread::park();
    }
}
