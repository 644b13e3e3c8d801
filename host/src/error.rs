//! Errors a person can act on, and the exit code each kind maps to.
//!
//! Every failure that reaches `main` is a [`Failure`]: what failed, why, and
//! (after a blank line) what to do. The exit codes are a contract that admins
//! script against; they are documented in `--help` and the README.

use std::fmt;
use std::process::ExitCode;

/// What kind of failure, which decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// PVE refused the request or could not be reached. Exit 1.
    Pve,
    /// Bad input or usage: a malformed address, an unknown flag. Exit 2.
    Input,
    /// The configuration (or the policy module it names) is wrong. Exit 3.
    Config,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Pve => 1,
            Kind::Input => 2,
            Kind::Config => 3,
        }
    }
}

/// A failure with a message and an optional remedy.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    pub fn pve(message: impl Into<String>) -> Failure {
        Failure::new(Kind::Pve, message)
    }

    pub fn input(message: impl Into<String>) -> Failure {
        Failure::new(Kind::Input, message)
    }

    pub fn config(message: impl Into<String>) -> Failure {
        Failure::new(Kind::Config, message)
    }

    /// Adds what to do about it, printed after a blank line.
    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    /// Prefixes the message with what was being done: `ban '1.2.3.4': …`.
    pub fn context(mut self, what: impl fmt::Display) -> Failure {
        self.message = format!("{what}: {}", self.message);
        self
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.kind.exit_code())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n\n{hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_contract() {
        assert_eq!(Kind::Pve.exit_code(), 1);
        assert_eq!(Kind::Input.exit_code(), 2);
        assert_eq!(Kind::Config.exit_code(), 3);
    }

    #[test]
    fn hint_follows_a_blank_line() {
        let f = Failure::config("no token").hint("set token in [pve]");
        assert_eq!(f.to_string(), "no token\n\nset token in [pve]");
    }
}
