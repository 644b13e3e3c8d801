//! The local API's Unix socket: created mode 0660 (group `[serve] group`,
//! else root's) in a directory made 0750, each peer checked with
//! SO_PEERCRED (root, the service's own user and members of the socket's
//! group), one thread per connection reading line-delimited JSON and
//! handing each request to the intake worker.

use super::intake::Job;
use crate::commands::local_api::{self, Answer, ApiRequest, MAX_LINE};
use crate::error::{Failure, Result};
use crate::log;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// Who may use the socket besides root and the service's own user.
#[derive(Clone, Copy, Debug)]
pub struct Peers {
    pub gid: u32,
    pub own_uid: u32,
}

/// The listening socket; the file is removed when the service stops (if
/// it is still ours).
pub struct Socket {
    pub listener: UnixListener,
    pub path: PathBuf,
    ino: u64,
}

/// The group id of `[serve] group`: a name or a number; root's (0) when
/// not set.
pub fn group_id(group: Option<&str>) -> Result<u32> {
    let Some(group) = group else { return Ok(0) };
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(group)
        .map_err(|_| Failure::config(format!("[serve] group '{group}' is not a group name")))?;
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the result points into buf.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return Err(
            Failure::config(format!("[serve] group '{group}': no such group"))
                .hint("Create it (`groupadd --system fail2pvefw`) or name an existing group."),
        );
    }
    Ok(grp.gr_gid)
}

fn chown_group(path: &Path, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, None, Some(gid))
}

/// Fails (exit 3) when a service already answers on `path`.
pub fn ensure_free(path: &Path) -> Result<()> {
    if UnixStream::connect(path).is_ok() {
        return Err(Failure::config(format!(
            "another fail2pvefw serve already listens on '{}'",
            path.display()
        ))
        .hint(
            "Stop it first (`systemctl stop fail2pvefw`), or give this one its own [serve] socket.",
        ));
    }
    Ok(())
}

/// Creates the socket: the directory (0750) if missing, the socket bound
/// beside its final name, given its mode and group, then renamed into
/// place, so no client ever sees it with a looser mode, and a stale one
/// left by a killed service is replaced.
pub fn bind(path: &Path, gid: u32) -> Result<Socket> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let bad = |what: &str, e: std::io::Error| {
        Failure::config(format!("[serve] socket '{}': {what}: {e}", path.display()))
            .hint("The service runs as root with RuntimeDirectory=fail2pvefw; [serve] socket must be in a directory it may write.")
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|e| bad("cannot create its directory", e))?;
        if gid != 0 {
            chown_group(dir, gid).map_err(|e| bad("cannot give its directory the group", e))?;
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "fail2pvefw.sock".into());
    let temp = dir.join(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let listener = UnixListener::bind(&temp).map_err(|e| bad("cannot listen", e))?;
    let placed = std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o660))
        .and_then(|()| {
            if gid != 0 {
                chown_group(&temp, gid)
            } else {
                Ok(())
            }
        })
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&temp);
        return Err(bad("cannot set it up", e));
    }
    let ino = std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0);
    Ok(Socket {
        listener,
        path: path.to_path_buf(),
        ino,
    })
}

impl Socket {
    /// Removes the socket file if it is still the one we bound.
    pub fn remove(&self) {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The peer's uid, gid and pid (SO_PEERCRED).
pub fn peer_cred(stream: &UnixStream) -> std::io::Result<libc::ucred> {
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a valid fd and a buffer of the size given.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred)
}

/// The supplementary groups of a process, from /proc.
fn groups_of(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

impl Peers {
    /// Whether this peer may use the API.
    pub fn allows(&self, cred: &libc::ucred) -> bool {
        cred.uid == 0
            || cred.uid == self.own_uid
            || cred.gid == self.gid
            || groups_of(cred.pid).contains(&self.gid)
    }
}

/// Accepts connections until `stop`; each gets its own thread.
pub fn accept_loop(
    listener: UnixListener,
    peers: Peers,
    jobs: mpsc::Sender<Job>,
    stop: Arc<AtomicBool>,
) {
    let fd = listener.as_raw_fd();
    while !stop.load(Ordering::SeqCst) {
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, 200) };
        if ready <= 0 {
            continue;
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                log::debug(&format!("serve: accept: {e}"));
                continue;
            }
        };
        let jobs = jobs.clone();
        let stop = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("api".into())
            .spawn(move || connection(stream, peers, &jobs, &stop));
        if let Err(e) = spawned {
            log::warn(&format!("serve: cannot start a connection thread: {e}"));
        }
    }
}

fn write_answer(mut stream: &UnixStream, answer: &Answer) -> std::io::Result<()> {
    stream.write_all(answer.line().as_bytes())
}

/// One client: its requests in order, each answered once the intake
/// worker is done with it.
fn connection(stream: UnixStream, peers: Peers, jobs: &mpsc::Sender<Job>, stop: &AtomicBool) {
    match peer_cred(&stream) {
        Ok(cred) if peers.allows(&cred) => {}
        Ok(cred) => {
            log::warn(&format!(
                "serve: refused a client (uid {}, gid {}, pid {}): not root, not in the socket's group",
                cred.uid, cred.gid, cred.pid
            ));
            // Take its request first (one line, briefly): closing with it
            // unread can fail the client's write (EPIPE) before it reads
            // the answer, and it would not learn why.
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(1)));
            let mut request = Vec::new();
            let _ = BufReader::new(&stream)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut request);
            let _ = write_answer(
                &stream,
                &Answer::refused(
                    local_api::DENIED,
                    "this user may not use fail2pvefw's socket: only root and members of its group ([serve] group)",
                ),
            );
            return;
        }
        Err(e) => {
            log::warn(&format!("serve: cannot check a client: {e}"));
            return;
        }
    }
    let mut reader = BufReader::new(&stream);
    loop {
        let mut line = Vec::new();
        match reader
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if !line.ends_with(b"\n") && line.len() > MAX_LINE {
            let _ = write_answer(
                &stream,
                &Answer::failed(&Failure::input(format!(
                    "request longer than {MAX_LINE} bytes; the connection is closed"
                ))),
            );
            return;
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<ApiRequest>(text.trim()) {
            Err(e) => Answer::failed(
                &Failure::input(format!("not a request: {e}"))
                    .hint("One JSON object a line, e.g. {\"op\":\"ban\",\"ip\":\"203.0.113.7\"}; see the README's section on fail2pvefw serve."),
            ),
            Ok(_) if stop.load(Ordering::SeqCst) => return,
            Ok(request) => {
                let (reply, answer) = mpsc::channel();
                if jobs.send(Job::Api { request, reply }).is_err() {
                    return;
                }
                match answer.recv() {
                    Ok(answer) => answer,
                    // The service stopped before the request was taken:
                    // the client does it itself.
                    Err(_) => return,
                }
            }
        };
        if write_answer(&stream, &answer).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(uid: u32, gid: u32) -> libc::ucred {
        // A pid with no /proc entry: no supplementary groups.
        libc::ucred {
            pid: i32::MAX,
            uid,
            gid,
        }
    }

    #[test]
    fn root_ourselves_and_the_group_may_use_the_socket_no_one_else() {
        let peers = Peers {
            gid: 4242,
            own_uid: 1000,
        };
        assert!(peers.allows(&cred(0, 0)));
        assert!(peers.allows(&cred(1000, 1000)));
        assert!(peers.allows(&cred(2000, 4242)));
        assert!(!peers.allows(&cred(65534, 65534)));
    }

    #[test]
    fn a_group_is_a_number_or_a_known_name() {
        assert_eq!(group_id(None).unwrap(), 0);
        assert_eq!(group_id(Some("4242")).unwrap(), 4242);
        assert_eq!(group_id(Some("root")).unwrap(), 0);
        let err = group_id(Some("no-such-group-f2p")).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Config);
    }

    #[test]
    fn the_socket_is_placed_0660_and_removed_only_if_ours() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/f.sock");
        let sock = bind(&path, 0).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o660);
        assert_eq!(mode(path.parent().unwrap()), 0o750);
        assert!(ensure_free(&path).is_err(), "it answers connections");
        // Replaced by another: left alone.
        let other = bind(&path, 0).unwrap();
        sock.remove();
        assert!(path.exists());
        other.remove();
        assert!(!path.exists());
        assert!(ensure_free(&path).is_ok());
    }
}
