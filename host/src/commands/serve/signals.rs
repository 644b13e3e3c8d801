//! SIGHUP, SIGTERM and SIGINT, taken synchronously: they are blocked in
//! every thread (the mask is set before any thread starts, and threads
//! inherit it) and one thread waits for them with `sigwait`, so no handler
//! ever runs inside a SQLite call or a PVE request.

use std::sync::mpsc::Sender;

/// What a signal asks of the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Reload,
    Stop,
}

fn set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks the three signals in this thread and every thread it starts from
/// now on. Call before starting any thread.
pub fn block() {
    let set = set();
    // SAFETY: a valid set; the old mask is not wanted.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Starts the thread that waits for the signals and sends what they ask.
pub fn listen(to: Sender<Signal>) {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let set = set();
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: a valid set and a place for the number.
                if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                    continue;
                }
                let what = if sig == libc::SIGHUP {
                    Signal::Reload
                } else {
                    Signal::Stop
                };
                if to.send(what).is_err() {
                    return;
                }
            }
        })
        .expect("start the signal thread");
}
