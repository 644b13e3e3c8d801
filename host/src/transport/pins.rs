//! The pins `fail2pvefw trust` stores: `<state dir>/trusted-fingerprints`,
//! mode 0600, replaced atomically, one `HOST:PORT FINGERPRINT` per line. A
//! pin counts only for the endpoint it was stored for, and is accepted in
//! addition to the configured trust (see `tls`). The old script kept them in
//! /var/run and lost them at every reboot; this file stays.
//!
//! They are read where a connection is set up (the client, the probe), not
//! with the configuration: a bad line stops only what needs the pins.

use crate::config::{HostPort, format_fingerprint, parse_fingerprint};
use crate::error::{Failure, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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
}
