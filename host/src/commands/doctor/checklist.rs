//! The doctor's sheet: one line per check as it completes, ✔, ✘ with the
//! fix, or – when it could not be checked, and the exit status they make.

use crate::error::{Failure, Kind, Result};

/// Counts and prints the checks as they complete.
pub(super) struct Doctor {
    passed: usize,
    failed: usize,
    /// A local check failed: the exit status is 3, not 1.
    local_failure: bool,
}

impl Doctor {
    pub(super) fn new() -> Doctor {
        Doctor {
            passed: 0,
            failed: 0,
            local_failure: false,
        }
    }

    fn line(&mut self, text: &str) {
        crate::output::line(text);
    }

    pub(super) fn pass(&mut self, name: &str, detail: &str) {
        self.passed += 1;
        self.line(&format!("✔ {name}: {detail}"));
    }

    /// A local check failed (the configuration or token file): exit 3.
    pub(super) fn fail_local(&mut self, name: &str, why: &str, fix: Option<&str>) {
        self.local_failure = true;
        self.fail(name, why, fix);
    }

    pub(super) fn fail(&mut self, name: &str, why: &str, fix: Option<&str>) {
        self.failed += 1;
        let mut text = format!("✘ {name}: {}", indent(why, "  "));
        if let Some(fix) = fix {
            text.push_str(&format!("\n  fix: {}", indent(fix, "       ")));
        }
        self.line(&text);
    }

    pub(super) fn fail_with(&mut self, name: &str, failure: &Failure) {
        self.fail(name, &failure.message, failure.hint.as_deref());
    }

    pub(super) fn skip(&mut self, name: &str, why: &str) {
        self.failed += 1;
        self.line(&format!("– {name}: not checked: {why}"));
    }

    pub(super) fn finish(self) -> Result<String> {
        let total = self.passed + self.failed;
        if self.failed == 0 {
            return Ok(format!("doctor: all {total} checks passed"));
        }
        let kind = if self.local_failure {
            Kind::Config
        } else {
            Kind::Pve
        };
        Err(Failure::new(
            kind,
            format!("doctor: {} of {total} checks did not pass", self.failed),
        ))
    }
}

fn indent(text: &str, by: &str) -> String {
    text.lines().collect::<Vec<_>>().join(&format!("\n{by}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_fix_stays_indented() {
        assert_eq!(indent("a\n  b", "    "), "a\n      b");
    }
}
