//! `fail2pvefw doctor`: the admin's check of the whole set-up, one line per
//! step, ✔ or ✘ with the fix.
//!
//! The host talks to PVE itself here, with [`Client`], not
//! through the policy: this is the admin's tool, and it must work when the
//! policy is what is broken. It reads only; it never prints the token's
//! secret. Exit status: 0 when every check passes, 3 when a local check
//! fails (the configuration file, the token file, the compiled-code
//! cache), else 1.

use crate::config::{Config, HostPort, Pve, Trust, format_fingerprint};
use crate::error::Result;
use crate::runtime::compiled;
use crate::transport::client::Client;
use crate::transport::pins;
use crate::transport::probe::{Presented, probe, why_refused};
use checklist::Doctor;
use cluster::{Got, get};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

mod checklist;
mod cluster;
mod crowdsec;

/// The checks after the per-node ones, skipped when no node answers.
const CLUSTER_CHECKS: [&str; 4] = [
    "privileges",
    "IPSet exists",
    "rule drops the IPSet",
    "datacenter firewall enabled",
];

/// `fail2pvefw doctor [-i IPSET]`.
pub fn run(config_path: &Path, ipset: Option<String>) -> Result<String> {
    let mut doc = Doctor::new();
    let loaded = Config::load(config_path).and_then(|c| pins_readable(&c).map(|()| c));
    let config = match loaded {
        Ok(config) => config,
        Err(failure) => {
            doc.fail_local("config parses", &failure.message, failure.hint.as_deref());
            return doc.finish();
        }
    };
    let nodes = 1 + config.pve.fallbacks.len();
    doc.pass(
        "config parses",
        &format!(
            "'{}' ({nodes} node(s), IPSet '{}')",
            config.path.display(),
            config.ipset
        ),
    );
    token_file(&mut doc, &config.token_path);
    crowdsec::check(&mut doc, &config);
    compiled_code(&mut doc, &config.state_dir);
    let mut client = None;
    for pve in node_configs(&config.pve) {
        if let Some(c) = node(&mut doc, &config, &pve) {
            client.get_or_insert(c);
        }
    }
    let Some(client) = client else {
        for name in CLUSTER_CHECKS {
            doc.skip(
                name,
                "no node answered with a trusted certificate and an accepted token",
            );
        }
        return doc.finish();
    };
    let ipset = ipset.unwrap_or_else(|| config.ipset.clone());
    cluster::privileges(&mut doc, &client, &config.pve.token.id);
    cluster::ipset_exists(&mut doc, &client, &ipset);
    cluster::rule(&mut doc, &client, &ipset);
    cluster::firewall_enabled(&mut doc, &client);
    doc.finish()
}

/// Each node of `[pve] host`/`hosts` alone (each gets its own stored pins).
fn node_configs(pve: &Pve) -> Vec<Pve> {
    let mut one = pve.clone();
    one.fallbacks.clear();
    let mut all = vec![one.clone()];
    for fallback in &pve.fallbacks {
        let mut other = one.clone();
        other.host = fallback.clone();
        all.push(other);
    }
    all
}

/// The pin file is no part of the configuration, but a bad line in it stops
/// every node's check: doctor reports it with the configuration, as a local
/// failure (exit 3), as it always has.
fn pins_readable(config: &Config) -> Result<()> {
    for host in std::iter::once(&config.pve.host).chain(&config.pve.fallbacks) {
        pins::load_pins(&config.state_dir, host)?;
    }
    Ok(())
}

/// The token is a password: its file must not be readable by others.
fn token_file(doc: &mut Doctor, path: &Path) {
    let name = "token file permissions";
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
            let mode = meta.permissions().mode() & 0o777;
            let why = format!(
                "'{}' holds the token and other users may read it (mode {mode:04o})",
                path.display()
            );
            let fix = format!("chmod 600 '{}'", path.display());
            doc.fail_local(name, &why, Some(&fix));
        }
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            doc.pass(
                name,
                &format!("'{}' is private (mode {mode:04o})", path.display()),
            );
        }
        Err(e) => doc.fail_local(
            name,
            &format!("cannot read '{}': {e}", path.display()),
            None,
        ),
    }
}

/// The policies' native code: the default policy's built-in code loads on
/// this machine, and each file of the cache matches the SHA-256 recorded
/// when fail2pvefw wrote it (a run would refuse it, and compile again).
fn compiled_code(doc: &mut Doctor, state_dir: &Path) {
    let name = "compiled policy code";
    let builtin = match compiled::engine()
        .map_err(|e| format!("{e:#}"))
        .and_then(|engine| compiled::load_embedded(&engine))
    {
        Ok(_) => "the default policy's is built in".to_string(),
        Err(why) => format!(
            "the default policy's built-in code does not load here ({why}), so each run compiles it (about 0.2 s)"
        ),
    };
    let dir = compiled::Cache::in_state_dir(state_dir).dir();
    let files = match compiled::check_cache(state_dir) {
        Ok(files) => files,
        Err(why) => return doc.fail_local(name, &why, None),
    };
    let bad: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let why = f.verdict.as_ref().err()?;
            Some(format!("'{}' {why}", f.path.display()))
        })
        .collect();
    if bad.is_empty() {
        let cached = match files.len() {
            0 => format!("no cached code in '{}'", dir.display()),
            n => format!(
                "{n} cached file(s) in '{}', each matching the SHA-256 recorded when it was written",
                dir.display()
            ),
        };
        return doc.pass(name, &format!("{builtin}; {cached}"));
    }
    let why = format!(
        "{}\nsuch a file is never run: the next run of its policy warns, compiles the policy again and replaces it",
        bad.join("\n")
    );
    let fix = format!(
        "nothing is needed; to clear the cache now (policies are recompiled as they are used):\n  rm -r '{}'",
        dir.display()
    );
    doc.fail_local(name, &why, Some(&fix));
}

/// Reachable, TLS verified, token accepted: the client when all three pass.
fn node(doc: &mut Doctor, config: &Config, pve: &Pve) -> Option<Client> {
    let at = &pve.host;
    let presented = match probe(pve, &config.state_dir) {
        Ok(presented) => presented,
        Err(failure) => {
            doc.fail_with(&format!("{at} reachable"), &failure);
            doc.skip(&format!("{at} TLS verified"), "the node did not answer");
            doc.skip(&format!("{at} token accepted"), "the node did not answer");
            return None;
        }
    };
    doc.pass(
        &format!("{at} reachable"),
        "TCP and TLS handshake completed",
    );
    let fingerprint = format_fingerprint(&presented.fingerprint);
    if let Some(refusal) = &presented.refusal {
        let why = format!(
            "the certificate is not trusted: {}; nothing was sent\n  presented SHA-256: {fingerprint}",
            why_refused(refusal)
        );
        let fix = format!(
            "compare the fingerprint with node → System → Certificates in the PVE GUI; if it matches, run:\n  fail2pvefw --config '{}' trust\nor put it into [pve] fingerprint",
            config.path.display()
        );
        doc.fail(&format!("{at} TLS verified"), &why, Some(&fix));
        doc.skip(
            &format!("{at} token accepted"),
            "the certificate is not trusted, so the token was not sent",
        );
        return None;
    }
    doc.pass(
        &format!("{at} TLS verified"),
        &format!("by {}", trusted_by(pve, &presented)),
    );
    let client = match Client::new(pve, &config.state_dir) {
        Ok(client) => client,
        Err(failure) => {
            doc.fail_with(&format!("{at} token accepted"), &failure);
            return None;
        }
    };
    token_accepted(doc, &client, at, &pve.token.id, &config.path).then_some(client)
}

fn trusted_by(pve: &Pve, presented: &Presented) -> String {
    let fingerprint = &presented.fingerprint;
    match &pve.trust {
        Trust::Pins(pins) if pins.contains(fingerprint) => "[pve] fingerprint".into(),
        _ if presented.stored_pins.contains(fingerprint) => {
            "a pin stored by `fail2pvefw trust`".into()
        }
        Trust::CaFile(path) => format!("[pve] ca_file '{}'", path.display()),
        Trust::SystemRoots => "the system's root CAs".into(),
        Trust::Pins(_) => "the configuration".into(),
    }
}

/// `GET /version`: any valid token, no privilege (§9).
fn token_accepted(
    doc: &mut Doctor,
    client: &Client,
    at: &HostPort,
    token_id: &str,
    config: &Path,
) -> bool {
    let name = format!("{at} token accepted");
    match get(client, "/version", &[]) {
        Ok(data) => {
            let version = data["version"].as_str().unwrap_or("?");
            doc.pass(&name, &format!("token '{token_id}', PVE {version}"));
            true
        }
        Err(Got::Refused(r)) if r.status == 401 => {
            let fix = format!(
                "check the token id '{token_id}' and its secret in '{}'; the token must exist and not be expired (Datacenter → Permissions → API Tokens)",
                config.display()
            );
            doc.fail(
                &name,
                &format!("PVE refused it: {} {}", r.status, r.reason),
                Some(&fix),
            );
            false
        }
        Err(got) => {
            doc.fail_with(&name, &got.failure());
            false
        }
    }
}
