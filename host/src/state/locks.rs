//! The locks in the state directory that keep one sender at a time.

use std::fs::File;
use std::path::Path;

/// An exclusive `flock` on a file in the state directory, released when the
/// file is closed (also when the process is killed, so no stale locks).
///
/// - `drain.lock`: held while sending; one sender at a time, in order.
/// - `drainer.lock`: held by a background drainer for its whole life,
///   sleeps included, so a ban starts a new one only when none is alive.
pub struct DrainLock {
    _file: File,
}

pub const SENDING: &str = "drain.lock";
pub const DRAINER: &str = "drainer.lock";

impl DrainLock {
    fn open(dir: &Path, name: &str) -> std::io::Result<File> {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(name))
    }

    /// Takes the sending lock if nobody holds it.
    pub fn try_take(dir: &Path) -> std::io::Result<Option<DrainLock>> {
        Self::try_take_named(dir, SENDING)
    }

    /// Takes the named lock if nobody holds it.
    pub fn try_take_named(dir: &Path, name: &str) -> std::io::Result<Option<DrainLock>> {
        let file = Self::open(dir, name)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DrainLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Waits for the lock, up to `timeout`.
    pub fn take(dir: &Path, timeout: std::time::Duration) -> std::io::Result<Option<DrainLock>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(lock) = Self::try_take(dir)? {
                return Ok(Some(lock));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
