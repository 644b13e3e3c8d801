//! Standard output: everything a command prints for a person or a script
//! goes through [`write`] or [`line`], never `print!`.
//!
//! A closed pipe is the reader saying it has read enough (`fail2pvefw status
//! | head -1`): as with ripgrep, the run ends there, quietly, with exit 0.
//! (`println!` panics instead, exit 101.) Any other error is ignored: the
//! caller (fail2ban) may not read stdout at all, and no command's work
//! depends on being heard.

use std::io::{self, Write};

/// Writes `text` as it is and flushes it.
pub fn write(text: &str) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        done_if_closed(&e);
    }
}

/// Writes `text` and a newline.
pub fn line(text: &str) {
    write(&format!("{text}\n"));
}

/// Ends the run when the reader has gone: whatever was to follow has no
/// reader, and what was done so far (a committed event, a stored pin) is
/// kept; nothing is half-written by stopping between two lines.
fn done_if_closed(e: &io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
}
