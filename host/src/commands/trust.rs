//! `fail2pvefw trust` and `-m`: look at the node's certificate (a TLS
//! handshake only: no request, never the token), show it, and on the admin's
//! word store its fingerprint where later runs find it.
//!
//! The handshake and the pin file are `transport`'s (`probe`, `pins`); this
//! is the conversation with the admin around them.

use crate::cli::DEFAULT_CONFIG_PATH;
use crate::config::{Config, HostPort, Trust, format_fingerprint};
use crate::error::{Failure, Result};
use crate::transport::pins::{pin_file, store_pin};
use crate::transport::probe::{Presented, details, probe, why_refused};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

fn date(secs: i64) -> String {
    crate::transport::tls::unix_to_utc(secs.max(0) as u64)
}

/// The certificate in words, the fingerprint as the PVE GUI shows it.
fn describe(at: &HostPort, presented: &Presented) -> String {
    let mut text = format!("PVE at {at} presents this certificate:\n");
    match details(&presented.der) {
        Some(d) => {
            text.push_str(&format!(
                "  subject:  {}\n",
                crate::log::sanitize(&d.subject)
            ));
            text.push_str(&format!(
                "  issuer:   {}\n",
                crate::log::sanitize(&d.issuer)
            ));
            text.push_str(&format!(
                "  valid:    from {} until {}\n",
                date(d.not_before),
                date(d.not_after)
            ));
            if !d.names.is_empty() {
                text.push_str(&format!(
                    "  names:    {}\n",
                    crate::log::sanitize(&d.names.join(", "))
                ));
            }
        }
        None => text.push_str("  (its contents cannot be parsed)\n"),
    }
    text.push_str(&format!(
        "  SHA-256:  {}\n",
        format_fingerprint(&presented.fingerprint)
    ));
    text
}

/// What in the configuration vouches for an accepted certificate.
fn trusted_by(config: &Config, presented: &Presented) -> String {
    let fp = &presented.fingerprint;
    match &config.pve.trust {
        Trust::Pins(pins) if pins.contains(fp) => "[pve] fingerprint".into(),
        _ if presented.stored_pins.contains(fp) => format!(
            "the pin stored in '{}'",
            pin_file(&config.state_dir).display()
        ),
        Trust::CaFile(path) => format!("[pve] ca_file '{}'", path.display()),
        Trust::SystemRoots => "the system's root CAs".into(),
        Trust::Pins(_) => "the configuration".into(),
    }
}

/// `fail2pvefw trust [--yes]`.
pub fn run(config: &Config, yes: bool) -> Result<String> {
    let at = &config.pve.host;
    let presented = probe(&config.pve, &config.state_dir)?;
    crate::output::write(&describe(at, &presented));
    let Some(refusal) = &presented.refusal else {
        return Ok(format!(
            "it is already trusted, by {}; nothing to do",
            trusted_by(config, &presented)
        ));
    };
    crate::output::line(&format!("It is not trusted yet: {}.", why_refused(refusal)));
    if !yes {
        confirm(config)?;
    }
    let file = remember(config, &presented)?;
    Ok(format!(
        "trusted {} for {at}; stored in '{}'",
        format_fingerprint(&presented.fingerprint),
        file.display()
    ))
}

/// `-m/--manual`: as `trust` when the certificate is not trusted yet, then
/// the command goes on, accepting the new pin (the client reads the pin
/// file when it is built). On stderr: stdout is the command's.
pub fn manual(config: &Config) -> Result<()> {
    let presented = probe(&config.pve, &config.state_dir)?;
    let Some(refusal) = &presented.refusal else {
        return Ok(());
    };
    let mut err = std::io::stderr();
    let _ = write!(err, "{}", describe(&config.pve.host, &presented));
    let _ = writeln!(err, "It is not trusted yet: {}.", why_refused(refusal));
    confirm(config)?;
    let file = remember(config, &presented)?;
    let _ = writeln!(err, "stored in '{}'", file.display());
    Ok(())
}

fn remember(config: &Config, presented: &Presented) -> Result<PathBuf> {
    let note = match details(&presented.der) {
        Some(d) => format!(
            "{}, until {}, trusted {}",
            d.subject,
            date(d.not_after),
            date(chrono::Utc::now().timestamp())
        ),
        None => format!("trusted {}", date(chrono::Utc::now().timestamp())),
    };
    store_pin(
        &config.state_dir,
        &config.pve.host,
        &presented.fingerprint,
        &note,
    )
}

/// Asks on the terminal; without one, says how to decide instead.
fn confirm(config: &Config) -> Result<()> {
    let at = &config.pve.host;
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::config(format!(
            "the certificate of {at} is not trusted, and there is no terminal to ask on; nothing was stored"
        ))
        .hint(format!(
            "Compare the SHA-256 fingerprint above with node → System → Certificates in the PVE GUI. If it matches, run:\n  fail2pvefw{} trust --yes\nor put it into [pve] fingerprint in '{}'.",
            config_arg(config),
            config.path.display()
        )));
    }
    let mut err = std::io::stderr();
    for _ in 0..3 {
        let _ = write!(
            err,
            "Does it match node → System → Certificates in the PVE GUI? Trust it for {at} (yes/no)? "
        );
        let _ = err.flush();
        let mut answer = String::new();
        if stdin.lock().read_line(&mut answer).unwrap_or(0) == 0 {
            break;
        }
        match parse_answer(&answer) {
            Some(true) => return Ok(()),
            Some(false) => break,
            None => continue,
        }
    }
    Err(Failure::config(format!(
        "the certificate of {at} was not trusted; nothing was stored"
    )))
}

fn parse_answer(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" => Some(true),
        "no" | "n" => Some(false),
        _ => None,
    }
}

/// ` --config 'FILE'` unless it is the default, for commands to copy.
fn config_arg(config: &Config) -> String {
    if config.path == Path::new(DEFAULT_CONFIG_PATH) {
        String::new()
    } else {
        format!(" --config '{}'", config.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(parse_answer("yes\n"), Some(true));
        assert_eq!(parse_answer(" Y "), Some(true));
        assert_eq!(parse_answer("no\n"), Some(false));
        assert_eq!(parse_answer("maybe"), None);
    }
}
