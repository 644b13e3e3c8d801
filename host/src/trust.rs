//! `fail2pvefw trust` and `-m`: look at the node's certificate (a TLS
//! handshake only: no request, never the token), show it, and on the admin's
//! word store its fingerprint where later runs find it.
//!
//! Pins live in `<state dir>/trusted-fingerprints`, mode 0600, replaced
//! atomically, one `HOST:PORT FINGERPRINT` per line: a pin counts only for
//! the endpoint it was stored for, and is accepted in addition to the
//! configured trust (see `tls`). The old script kept them in /var/run and
//! lost them at every reboot; this file stays.

use crate::config::{
    Config, DEFAULT_PATH, HostPort, Pve, Trust, format_fingerprint, parse_fingerprint,
};
use crate::error::{Failure, Result};
use crate::tls::{self, Seen};
use std::io::{BufRead, IsTerminal, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const PIN_FILE: &str = "trusted-fingerprints";

const HEADER: &str = "\
# Certificates trusted with `fail2pvefw trust`, one per line:
# HOST:PORT SHA-256-FINGERPRINT  # note
# Each is accepted for that endpoint besides the trust in the config file.
# Delete a line to stop trusting it.
";

pub fn pin_file(state_dir: &Path) -> PathBuf {
    state_dir.join(PIN_FILE)
}

/// The pins stored for `endpoint`; none when the file does not exist.
pub fn load_pins(state_dir: &Path, endpoint: &HostPort) -> Result<Vec<[u8; 32]>> {
    let path = pin_file(state_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Failure::config(format!(
                "cannot read '{}': {e}",
                path.display()
            )));
        }
    };
    refuse_if_writable_by_others(&path)?;
    parse_pins(&text, endpoint).map_err(|(line, why)| {
        Failure::config(format!("'{}' line {line}: {why}", path.display()))
            .hint("Fix or delete that line; `fail2pvefw trust` writes a correct one.")
    })
}

/// Whoever may write the pin file decides whom we send the token to.
fn refuse_if_writable_by_others(path: &Path) -> Result<()> {
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    if mode & 0o022 != 0 {
        return Err(Failure::config(format!(
            "'{}' may be written by other users (mode {mode:04o}), so they could choose which server gets the API token",
            path.display()
        ))
        .hint(format!("Run: chmod 600 '{}'", path.display())));
    }
    Ok(())
}

/// Parses the pin file; an error names the 1-based line.
fn parse_pins(text: &str, endpoint: &HostPort) -> Result<Vec<[u8; 32]>, (usize, String)> {
    let mut pins = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let fields: Vec<&str> = content.split_whitespace().collect();
        let [host, fingerprint] = fields[..] else {
            return Err((i + 1, "expected 'HOST:PORT FINGERPRINT'".into()));
        };
        let host = HostPort::parse(host).map_err(|e| (i + 1, e))?;
        let pin = parse_fingerprint(fingerprint).map_err(|e| (i + 1, e))?;
        if host == *endpoint {
            pins.push(pin);
        }
    }
    Ok(pins)
}

/// Adds a pin for `endpoint` (no-op if there) and returns the file's path.
pub fn store_pin(
    state_dir: &Path,
    endpoint: &HostPort,
    pin: &[u8; 32],
    note: &str,
) -> Result<PathBuf> {
    let path = pin_file(state_dir);
    let failed = |e: String| {
        Failure::config(format!("cannot store the pin in '{}': {e}", path.display()))
            .hint("Check that the state directory ([state] dir) is writable by this user.")
    };
    crate::state::db::ensure_dir(state_dir).map_err(&failed)?;
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HEADER.to_string(),
        Err(e) => return Err(failed(e.to_string())),
    };
    if parse_pins(&existing, endpoint).is_ok_and(|pins| pins.contains(pin)) {
        return Ok(path);
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "{endpoint} {}  # {}\n",
        format_fingerprint(pin),
        one_line(note)
    ));
    write_atomically(&path, &text).map_err(|e| failed(e.to_string()))?;
    Ok(path)
}

/// The note comes from the certificate, which the server chose: a newline in
/// it must not become a line of its own (a pin for someone else).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Write a temporary file beside it, then rename: readers see the old or
/// the new file, never half of one, and a crash loses at most the new pin.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    crate::state::files::write_atomically(path, text.as_bytes(), 0o600)
}

/// The certificate a node presented, and what the configured trust says.
pub struct Presented {
    pub der: Vec<u8>,
    pub fingerprint: [u8; 32],
    /// Why the configured trust (plus stored pins) refuses it; `None` if it accepts it.
    pub refusal: Option<rustls::Error>,
}

/// Connects and completes a TLS handshake, then closes: no request is sent.
pub fn probe(pve: &Pve) -> Result<Presented> {
    let seen = Seen::default();
    let config = tls::probe_config(&pve.trust, &pve.stored_pins, &seen)
        .map_err(|e| Failure::config(format!("cannot set up TLS: {e}")))?;
    handshake(pve, Arc::new(config))?;
    let der = seen
        .certificate()
        .ok_or_else(|| Failure::pve(format!("PVE at {} presented no certificate", pve.host)))?;
    Ok(Presented {
        fingerprint: tls::sha256(&der),
        der,
        refusal: seen.rejection(),
    })
}

fn handshake(pve: &Pve, config: Arc<rustls::ClientConfig>) -> Result<()> {
    let at = &pve.host;
    let name = rustls::pki_types::ServerName::try_from(at.host.clone())
        .map_err(|e| Failure::config(format!("[pve] host '{}': {e}", at.host)))?;
    let mut conn = rustls::ClientConnection::new(config, name)
        .map_err(|e| Failure::config(format!("cannot set up TLS: {e}")))?;
    let mut sock = connect(pve)?;
    let failed = |e: std::io::Error| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            Failure::pve(format!("PVE at {at} did not answer in time"))
        } else {
            Failure::pve(format!("TLS handshake with {at} failed: {e}"))
        }
    };
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(failed)?;
    }
    // Only a close_notify alert goes out after the handshake: no data.
    conn.send_close_notify();
    while conn.wants_write() {
        if conn.write_tls(&mut sock).is_err() {
            break;
        }
    }
    Ok(())
}

fn connect(pve: &Pve) -> Result<TcpStream> {
    let at = &pve.host;
    let unreachable = |why: String| {
        Failure::pve(format!("cannot connect to PVE at {at}: {why}")).hint(
            "Check [pve] host, that pveproxy runs on the node, and that a firewall lets this machine reach it.",
        )
    };
    let addrs: Vec<SocketAddr> = (at.host.as_str(), at.port)
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .collect();
    let mut why = "the name has no address".to_string();
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, pve.timeout) {
            Ok(sock) => {
                let _ = sock.set_read_timeout(Some(pve.timeout));
                let _ = sock.set_write_timeout(Some(pve.timeout));
                return Ok(sock);
            }
            Err(e) => why = e.to_string(),
        }
    }
    Err(unreachable(why))
}

/// What the admin sees before deciding.
struct Details {
    subject: String,
    issuer: String,
    not_before: i64,
    not_after: i64,
    names: Vec<String>,
}

fn details(der: &[u8]) -> Option<Details> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|name| match name {
                    GeneralName::DNSName(dns) => dns.to_string(),
                    GeneralName::IPAddress(ip) => ip_text(ip),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Details {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        names,
    })
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap()).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap()).to_string(),
        _ => format!("{bytes:02x?}"),
    }
}

fn date(secs: i64) -> String {
    crate::pve::unix_to_utc(secs.max(0) as u64)
}

/// The certificate in words, the fingerprint as the PVE GUI shows it.
fn describe(at: &HostPort, presented: &Presented) -> String {
    let mut text = format!("PVE at {at} presents this certificate:\n");
    match details(&presented.der) {
        Some(d) => {
            text.push_str(&format!("  subject:  {}\n", one_line(&d.subject)));
            text.push_str(&format!("  issuer:   {}\n", one_line(&d.issuer)));
            text.push_str(&format!(
                "  valid:    from {} until {}\n",
                date(d.not_before),
                date(d.not_after)
            ));
            if !d.names.is_empty() {
                text.push_str(&format!("  names:    {}\n", one_line(&d.names.join(", "))));
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
        _ if config.pve.stored_pins.contains(fp) => format!(
            "the pin stored in '{}'",
            pin_file(&config.state_dir).display()
        ),
        Trust::CaFile(path) => format!("[pve] ca_file '{}'", path.display()),
        Trust::SystemRoots => "the system's root CAs".into(),
        Trust::Pins(_) => "the configuration".into(),
    }
}

pub(crate) fn why_refused(err: &rustls::Error) -> String {
    match err {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))
            if other.0.downcast_ref::<tls::PinMismatch>().is_some() =>
        {
            "its fingerprint is not in [pve] fingerprint".into()
        }
        rustls::Error::InvalidCertificate(e) => crate::pve::describe_certificate_error(e),
        rustls::Error::General(why) => why.clone(),
        other => other.to_string(),
    }
}

/// `fail2pvefw trust [--yes]`.
pub fn run(config: &Config, yes: bool) -> Result<String> {
    let at = &config.pve.host;
    let presented = probe(&config.pve)?;
    let mut out = std::io::stdout();
    let _ = write!(out, "{}", describe(at, &presented));
    let Some(refusal) = &presented.refusal else {
        return Ok(format!(
            "it is already trusted, by {}; nothing to do",
            trusted_by(config, &presented)
        ));
    };
    let _ = writeln!(out, "It is not trusted yet: {}.", why_refused(refusal));
    let _ = out.flush();
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
/// the command goes on, accepting the new pin. On stderr: stdout is the
/// command's.
pub fn manual(config: &mut Config) -> Result<()> {
    let presented = probe(&config.pve)?;
    let Some(refusal) = &presented.refusal else {
        return Ok(());
    };
    let mut err = std::io::stderr();
    let _ = write!(err, "{}", describe(&config.pve.host, &presented));
    let _ = writeln!(err, "It is not trusted yet: {}.", why_refused(refusal));
    confirm(config)?;
    let file = remember(config, &presented)?;
    let _ = writeln!(err, "stored in '{}'", file.display());
    config.pve.stored_pins.push(presented.fingerprint);
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
    if config.path == Path::new(DEFAULT_PATH) {
        String::new()
    } else {
        format!(" --config '{}'", config.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(text: &str) -> HostPort {
        HostPort::parse(text).unwrap()
    }

    #[test]
    fn pins_count_only_for_their_endpoint() {
        let a = ["AB"; 32].join(":");
        let b = "cd".repeat(32);
        let text = format!("{HEADER}\n192.0.2.10:8006 {a}  # CN=pve\n192.0.2.11 {b}\n");
        assert_eq!(
            parse_pins(&text, &endpoint("192.0.2.10")).unwrap(),
            vec![[0xab; 32]]
        );
        assert_eq!(
            parse_pins(&text, &endpoint("192.0.2.11:8006")).unwrap(),
            vec![[0xcd; 32]]
        );
        assert!(
            parse_pins(&text, &endpoint("192.0.2.12"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn bad_line_is_named() {
        let err = parse_pins("# ok\n192.0.2.10 nothex\n", &endpoint("h")).unwrap_err();
        assert_eq!(err.0, 2);
        let err = parse_pins("192.0.2.10\n", &endpoint("h")).unwrap_err();
        assert_eq!(err.0, 1);
    }

    #[test]
    fn stored_pin_is_found_again_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let at = endpoint("192.0.2.10");
        assert!(load_pins(&state, &at).unwrap().is_empty());
        let path = store_pin(&state, &at, &[7; 32], "CN=pve").unwrap();
        store_pin(&state, &at, &[7; 32], "again").unwrap();
        store_pin(&state, &at, &[8; 32], "renewed").unwrap();
        assert_eq!(load_pins(&state, &at).unwrap(), vec![[7; 32], [8; 32]]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("192.0.2.10:8006 ").count(), 2, "{text}");
    }

    #[test]
    fn a_newline_in_the_note_cannot_add_a_pin() {
        let dir = tempfile::tempdir().unwrap();
        let at = endpoint("192.0.2.10");
        let evil = format!("CN=x\n192.0.2.10:8006 {}", ["EE"; 32].join(":"));
        store_pin(dir.path(), &at, &[1; 32], &evil).unwrap();
        assert_eq!(load_pins(dir.path(), &at).unwrap(), vec![[1; 32]]);
    }

    #[test]
    fn pin_file_writable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let at = endpoint("192.0.2.10");
        let path = store_pin(dir.path(), &at, &[1; 32], "x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = load_pins(dir.path(), &at).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn answers() {
        assert_eq!(parse_answer("yes\n"), Some(true));
        assert_eq!(parse_answer(" Y "), Some(true));
        assert_eq!(parse_answer("no\n"), Some(false));
        assert_eq!(parse_answer("maybe"), None);
    }
}
