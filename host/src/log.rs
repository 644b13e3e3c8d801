//! The runner's log: one line per message on stderr, which fail2ban copies
//! into its own log when an action fails and systemd into the journal.
//!
//! Messages are stripped of control characters so nothing a PVE server or a
//! policy sends can forge extra log lines. `--log-format json` writes one
//! JSON object per line instead, with the same message and named fields.

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
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How lines look (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `fail2pvefw: LEVEL: MESSAGE`, for fail2ban's log and the journal.
    #[default]
    Text,
    /// One JSON object per line: time, level, message and fields.
    Json,
}

pub fn set_format(format: Format) {
    JSON.store(format == Format::Json, Ordering::Relaxed);
}

/// Shows messages at `level` and above (`-v` lowers it to info, `-vv` to debug).
pub fn set_threshold(level: Level) {
    THRESHOLD.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= THRESHOLD.load(Ordering::Relaxed)
}

/// Writes `fail2pvefw: <level>: <source>: <message>`.
pub fn write(level: Level, source: &str, message: &str) {
    event(level, source, message, &[]);
}

/// One event with named fields (action, entry, ipset, …): in text the
/// message alone, in JSON the fields beside it.
pub fn event(level: Level, source: &str, message: &str, fields: &[(&str, &str)]) {
    if !enabled(level) {
        return;
    }
    if JSON.load(Ordering::Relaxed) {
        stderr(&json_line(level, source, message, fields));
        return;
    }
    let clean = sanitize(message);
    if source.is_empty() {
        stderr(&format!("fail2pvefw: {}: {clean}", level.label()));
    } else {
        stderr(&format!("fail2pvefw: {}: {source}: {clean}", level.label()));
    }
}

/// One line on stderr. A closed or full stderr loses the line, never the
/// run (`eprintln!` would panic): the log is no part of the work.
fn stderr(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
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

/// A failure that ends the run, as `main` reports it: the text as it
/// always was, or one JSON line with the hint and the exit code.
pub fn failure(failure: &crate::error::Failure) {
    if JSON.load(Ordering::Relaxed) {
        let code = failure.kind.exit_code().to_string();
        let mut fields = vec![("exit_code", code.as_str())];
        if let Some(hint) = &failure.hint {
            fields.push(("hint", hint.as_str()));
        }
        stderr(&json_line(Level::Error, "", &failure.message, &fields));
    } else {
        stderr(&format!("fail2pvefw: {failure}"));
    }
}

fn json_line(level: Level, source: &str, message: &str, fields: &[(&str, &str)]) -> String {
    let mut line = serde_json::Map::new();
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    line.insert("time".into(), time.into());
    line.insert("level".into(), level.label().into());
    line.insert("message".into(), message.into());
    if !source.is_empty() {
        line.insert("source".into(), source.into());
    }
    line.insert("pid".into(), std::process::id().into());
    for (key, value) in fields {
        line.entry(*key).or_insert_with(|| (*value).into());
    }
    serde_json::Value::Object(line).to_string()
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

    #[test]
    fn json_line_is_one_object_with_fields() {
        let line = json_line(
            Level::Info,
            "drain",
            "ban\ndone",
            &[("entry", "192.0.2.1"), ("level", "x")],
        );
        assert!(!line.contains('\n'), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "info");
        assert_eq!(v["message"], "ban\ndone");
        assert_eq!(v["entry"], "192.0.2.1");
        assert_eq!(v["source"], "drain");
    }
}
