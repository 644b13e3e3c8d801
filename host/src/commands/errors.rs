//! The failures of the state directory, as the commands report them.

use crate::error::Failure;

pub fn db_failure(e: rusqlite::Error) -> Failure {
    Failure::config(format!("the state database failed: {e}"))
        .hint("Check that the state directory ([state] dir) is writable and the disk not full.")
}

pub fn lock_failure(e: std::io::Error) -> Failure {
    Failure::config(format!(
        "cannot use the drain lock in the state directory: {e}"
    ))
    .hint("Check that the state directory ([state] dir) is writable by the user fail2ban runs as.")
}
