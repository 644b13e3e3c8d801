//! `fail2pvefw serve`: one resident process that holds what each CLI run
//! rebuilds (the configuration, a warm policy instance, the open state
//! database, a keep-alive HTTPS connection) and takes requests on a Unix
//! socket (the local API, `local_api`).
//!
//! Threads, each with one job:
//!
//! - `intake`: the local API's requests, one at a time, with its own policy
//!   instance and database connection: validate, check, commit, answer. It
//!   never waits behind a PVE write, so fail2ban's lane is never held up by
//!   PVE.
//! - `sender`: the periodic tasks (`scheduler`): drain the queue as events
//!   arrive, `sync` on a period (and the CrowdSec pulls, when configured),
//!   with its own instance holding the keep-alive connection.
//! - `socket`: accepts connections, checks each peer (SO_PEERCRED), one
//!   thread per connection.
//! - `metrics_http`: `/metrics` on `[metrics] listen` (loopback only).
//! - `signals`: SIGHUP reloads the configuration (a bad one keeps the old,
//!   logged), SIGTERM/SIGINT stop: the intake answers what it was given,
//!   the sender stops before the next entry (events leave the queue only
//!   when PVE answered), the socket file is removed.

pub mod intake;
pub mod metrics_http;
pub mod scheduler;
pub mod sender;
pub mod signals;
pub mod socket;
pub mod worker;

use super::context::Context;
use crate::config::Config;
use crate::error::{Failure, Result};
use crate::log;
use signals::Signal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// Runs the service until SIGTERM or SIGINT.
pub fn run(ctx: Context) -> Result<String> {
    let config = Arc::new(ctx.config);
    let source = ctx.source;
    let metrics = config
        .metrics_listen
        .as_deref()
        .map(metrics_http::address)
        .transpose()?;
    let gid = socket::group_id(config.serve.group.as_deref())?;
    socket::ensure_free(&config.serve.socket)?;
    // Before any thread starts: they all inherit the mask.
    signals::block();
    let stop = Arc::new(AtomicBool::new(false));

    let (wake_tx, wake_rx) = mpsc::channel();
    let (jobs_tx, jobs_rx) = mpsc::channel();
    let intake = {
        let (config, source, wake) = (config.clone(), source.clone(), wake_tx.clone());
        start(
            "intake",
            move || intake::Intake::new(config, source, wake),
            move |w| w.run(jobs_rx),
        )?
    };
    let sender = {
        let (config, source, stop) = (config.clone(), source.clone(), stop.clone());
        start(
            "sender",
            move || sender::Worker::new(config, source, stop),
            move |w| w.run(wake_rx),
        )?
    };

    let listener = match metrics {
        Some(addr) => Some(metrics_http::bind(addr)?),
        None => None,
    };
    let sock = socket::bind(&config.serve.socket, gid)?;
    let peers = socket::Peers {
        gid,
        // SAFETY: geteuid cannot fail.
        own_uid: unsafe { libc::geteuid() },
    };
    {
        let listener = sock
            .listener
            .try_clone()
            .map_err(|e| Failure::config(format!("[serve] socket: {e}")))?;
        let (jobs, stop) = (jobs_tx.clone(), stop.clone());
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || socket::accept_loop(listener, peers, jobs, stop))
            .map_err(|e| Failure::config(format!("cannot start a thread: {e}")))?;
    }
    if let Some(listener) = listener {
        let (jobs, stop) = (jobs_tx.clone(), stop.clone());
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || metrics_http::serve(listener, jobs, stop))
            .map_err(|e| Failure::config(format!("cannot start a thread: {e}")))?;
    }
    let (signal_tx, signal_rx) = mpsc::channel();
    signals::listen(signal_tx);
    notify("READY=1");
    log::info(&format!(
        "serve: listening on '{}'{}",
        sock.path.display(),
        metrics
            .map(|a| format!(", /metrics on http://{a}/metrics"))
            .unwrap_or_default()
    ));

    let mut config = config;
    while let Ok(signal) = signal_rx.recv() {
        match signal {
            Signal::Stop => break,
            Signal::Reload => {
                notify("RELOADING=1");
                if let Some(new) = reload(&config) {
                    config = new;
                    let _ = jobs_tx.send(intake::Job::Reload(config.clone()));
                    let _ = wake_tx.send(worker::Wake::Reload(config.clone()));
                }
                notify("READY=1");
            }
        }
    }
    notify("STOPPING=1");
    log::info("serve: stopping");
    stop.store(true, Ordering::SeqCst);
    sock.remove();
    let _ = jobs_tx.send(intake::Job::Stop);
    let _ = wake_tx.send(worker::Wake::Stop);
    let _ = intake.join();
    let _ = sender.join();
    Ok(String::new())
}

/// The configuration file read again; `None` (logged) keeps the old one.
fn reload(old: &Config) -> Option<Arc<Config>> {
    let new = Config::load(&old.path).and_then(|new| {
        if let Some(listen) = &new.metrics_listen {
            metrics_http::address(listen)?;
        }
        Ok(new)
    });
    match new {
        Ok(new) => {
            for warning in &new.warnings {
                log::warn(warning);
            }
            if new.serve.socket != old.serve.socket
                || new.serve.group != old.serve.group
                || new.metrics_listen != old.metrics_listen
            {
                log::warn(
                    "serve: [serve] socket, [serve] group and [metrics] listen take effect at the next start",
                );
            }
            log::info(&format!(
                "serve: configuration '{}' reloaded",
                new.path.display()
            ));
            Some(Arc::new(new))
        }
        Err(f) => {
            log::warn(&format!(
                "serve: the configuration was not reloaded, the old one stays: {f}"
            ));
            None
        }
    }
}

/// Starts a worker thread: `make` runs in it (a policy instance stays in
/// the thread it was made in), its failure ends the start-up (exit 3 for
/// a bad configuration or policy); then `work` runs.
fn start<W: 'static>(
    name: &str,
    make: impl FnOnce() -> Result<W> + Send + 'static,
    work: impl FnOnce(W) + Send + 'static,
) -> Result<std::thread::JoinHandle<()>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || match make() {
            Ok(worker) => {
                let _ = ready_tx.send(Ok(()));
                work(worker);
            }
            Err(failure) => {
                let _ = ready_tx.send(Err(failure));
            }
        })
        .map_err(|e| Failure::config(format!("cannot start a thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(Failure::config(format!(
            "serve: the {name} worker did not start"
        ))),
    }
}

/// Tells systemd (Type=notify) how the service is doing.
fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(&path))
    };
    if let Err(e) = sent {
        log::debug(&format!("serve: sd_notify: {e}"));
    }
}
