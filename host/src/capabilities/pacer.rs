//! The `pve` capability's side of `[pve] writes_per_second`: before each
//! write to the real PVE it reserves a slot in the state directory's token
//! bucket (`state::pace`), shared by every fail2pvefw process, and waits
//! for it. When the state database cannot be used, the bucket is this
//! process's own, so the rate still holds for what it sends.

use crate::log;
use crate::state::db::Db;
use crate::state::pace;
use crate::state::request::now;
use std::path::PathBuf;
use std::time::Duration;

pub struct Pacer {
    rate: f64,
    dir: PathBuf,
    db: Option<Db>,
    /// This process's own bucket, when `state.db` fails: (tokens, at).
    local: Option<(f64, f64)>,
}

impl Pacer {
    /// `rate` writes a second for the state directory `dir`.
    pub fn new(rate: f64, dir: PathBuf) -> Pacer {
        Pacer {
            rate,
            dir,
            db: None,
            local: None,
        }
    }

    /// Waits for this write's slot.
    pub fn wait(&mut self) {
        let now = now();
        let wait = match self.shared(now) {
            Ok(wait) => wait,
            Err(why) => {
                log::debug(&format!(
                    "the shared write budget is unavailable ({why}); pacing this process alone"
                ));
                self.own(now)
            }
        };
        if wait > 0.0 {
            log::debug(&format!(
                "waiting {wait:.2} s for a write slot ([pve] writes_per_second = {})",
                self.rate
            ));
            std::thread::sleep(Duration::from_secs_f64(wait.min(3600.0)));
        }
    }

    fn shared(&mut self, now: f64) -> Result<f64, String> {
        if self.db.is_none() {
            self.db = Some(Db::open(&self.dir).map_err(|f| f.message)?);
        }
        let db = self.db.as_mut().expect("opened above");
        pace::reserve(db.conn_mut(), self.rate, now).map_err(|e| e.to_string())
    }

    fn own(&mut self, now: f64) -> f64 {
        let full = pace::burst(self.rate);
        let (tokens, at) = self.local.unwrap_or((full, now));
        let tokens = (tokens + (now - at).max(0.0) * self.rate).min(full) - 1.0;
        self.local = Some((tokens, now));
        if tokens >= 0.0 {
            0.0
        } else {
            -tokens / self.rate
        }
    }
}
