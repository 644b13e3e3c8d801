//! `log`: the policy's lines go to the runner's log, marked as the policy's.

use crate::bindings::fail2pvefw::policy::log::{self, Level};
use crate::log as host_log;

pub struct Log {
    /// Names the policy in every line (`policy default`, `policy my.wasm`).
    pub source: String,
}

impl log::Host for Log {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Debug => host_log::Level::Debug,
            Level::Info => host_log::Level::Info,
            Level::Warn => host_log::Level::Warn,
            Level::Error => host_log::Level::Error,
        };
        // Cap the length: a policy must not flood fail2ban's log.
        let message: String = message.chars().take(2000).collect();
        host_log::write(level, &self.source, &message);
    }
}
