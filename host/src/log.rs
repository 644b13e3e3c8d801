//! The runner's log: one line per message on stderr, which fail2ban copies
//! into its own log when an action fails and systemd into the journal.
//!
//! Messages are stripped of control characters so nothing a PVE server or a
//! policy sends can forge extra log lines.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

static THRESHOLD: AtomicU8 = AtomicU8::new(Level::Warn as u8);

/// Shows messages at `level` and above (`-v` lowers it to info, `-vv` to debug).
pub fn set_threshold(level: Level) {
    THRESHOLD.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= THRESHOLD.load(Ordering::Relaxed)
}

/// Writes `fail2pvefw: <level>: <source>: <message>`.
pub fn write(level: Level, source: &str, message: &str) {
    if !enabled(level) {
        return;
    }
    let clean = sanitize(message);
    if source.is_empty() {
        eprintln!("fail2pvefw: {}: {clean}", level.label());
    } else {
        eprintln!("fail2pvefw: {}: {source}: {clean}", level.label());
    }
}

pub fn warn(message: &str) {
    write(Level::Warn, "", message);
}

pub fn info(message: &str) {
    write(Level::Info, "", message);
}

pub fn debug(message: &str) {
    write(Level::Debug, "", message);
}

/// Replaces control characters (CR, LF, ESC, …) with a space.
pub fn sanitize(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_forge_lines() {
        assert_eq!(sanitize("a\nb\r\x1b[31mc"), "a b  [31mc");
    }
}
