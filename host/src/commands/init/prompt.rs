//! Questions on the terminal for `init`; the token is not echoed.

use crate::error::{Failure, Result};
use std::io::{BufRead, IsTerminal, Write};

/// Questions on the terminal (stderr), or `None` without one.
pub(super) struct Prompt {
    terminal: bool,
}

impl Prompt {
    pub(super) fn new() -> Prompt {
        Prompt {
            terminal: std::io::stdin().is_terminal(),
        }
    }

    /// The answer, the default for an empty one, `None` without a terminal.
    pub(super) fn ask(
        &mut self,
        question: &str,
        default: Option<&str>,
        secret: bool,
    ) -> Result<Option<String>> {
        if !self.terminal {
            return Ok(default.map(str::to_string));
        }
        let mut err = std::io::stderr();
        let shown = default.map(|d| format!(" [{d}]")).unwrap_or_default();
        let _ = write!(err, "{question}{shown}: ");
        let _ = err.flush();
        if secret {
            echo(false);
        }
        let mut answer = String::new();
        let read = std::io::stdin().lock().read_line(&mut answer);
        if secret {
            echo(true);
            let _ = writeln!(err);
        }
        read.map_err(|e| Failure::input(format!("cannot read the answer: {e}")))?;
        let answer = answer.trim();
        Ok(match (answer.is_empty(), default) {
            (true, Some(d)) => Some(d.to_string()),
            (true, None) => None,
            (false, _) => Some(answer.to_string()),
        })
    }
}

/// The token is not shown as it is typed.
fn echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}
