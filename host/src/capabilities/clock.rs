//! `clock`: the only time the policy sees.

use crate::bindings::fail2pvefw::policy::clock;
use chrono::{Local, Offset, TimeZone};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Default)]
pub struct Clock;

impl clock::Host for Clock {
    fn now(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn local_offset(&mut self, at: i64) -> i32 {
        // The system time zone (TZ, else /etc/localtime), at that instant, so
        // a ban restored after a DST change still shows its original wall time.
        match Local.timestamp_opt(at, 0) {
            chrono::LocalResult::Single(t) => t.offset().fix().local_minus_utc(),
            chrono::LocalResult::Ambiguous(t, _) => t.offset().fix().local_minus_utc(),
            chrono::LocalResult::None => 0,
        }
    }
}
