//! A hostile policy: `ban MODE` misbehaves as MODE says, so the host's tests
//! can prove each misbehaviour is contained.
//!
//! - `loop`: never returns;
//! - `alloc`: allocates without end;
//! - `users`: asks PVE for `/access/users`, which no policy is granted;
//! - `garbage`: `validate` answers a screenful of escape codes;
//! - `panic`: panics;
//! - `file`, `env`, `clock`, `socket`: tries WASI files, the environment,
//!   the system clock, a TCP connection;
//! - writes the host's guard must deny before any request (see [`write`]):
//!   `delete-ipset`, `delete-ipset-force`, `rename-ipset`, `never-ban`,
//!   `node`, `low-half`, `high-half`, `wide-v6`, `nomatch`, `digest`,
//!   `alias`, `other-ipset`, `newline-comment`;
//! - writes of someone else's entry, which the host leaves alone:
//!   `delete-manual`, `put-manual` (the entry `192.0.2.50`);
//! - errors in odd words, which the host must judge by their case alone:
//!   `odd-busy`, `odd-refused`, `odd-unreachable`;
//! - an `admission` that breaks the host's rules (see `admit.rs`); for it,
//!   `validate` keeps an input made of digits and dots as it is.

//!
//! With the feature `without-admission` it exports the world `policy` only
//! (no `admission`): the host then chooses by the default policy's rules.

#[cfg(not(feature = "without-admission"))]
mod admit;

#[cfg(not(feature = "without-admission"))]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "admitting-policy",
    });
}

#[cfg(feature = "without-admission")]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "policy",
    });
}

#[cfg(target_arch = "wasm32")]
bindings::export!(Hostile with_types_in bindings);

use bindings::exports::fail2pvefw::policy::action::{BanRequest, Entry, Guest, PolicyIdentity};
use bindings::fail2pvefw::policy::pve;
use bindings::fail2pvefw::policy::types::{Error, Refusal, RefusalCause};

pub struct Hostile;

impl Guest for Hostile {
    fn identity() -> PolicyIdentity {
        PolicyIdentity {
            name: "hostile-policy".into(),
            version: "0.1.0".into(),
        }
    }

    fn validate(req: BanRequest) -> Result<String, Error> {
        if req.ip == "garbage" {
            return Ok("\u{1b}[2J\u{1b}[31m pwned \n".repeat(500));
        }
        if !req.ip.is_empty() && req.ip.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Ok(req.ip);
        }
        Ok("192.0.2.1".into())
    }

    fn start(_ipset: String) -> Result<String, Error> {
        Ok("started".into())
    }

    fn check(_ipset: String) -> Result<String, Error> {
        Ok("checked".into())
    }

    fn ban(req: BanRequest) -> Result<String, Error> {
        #[cfg(feature = "without-admission")]
        if plain(&req.ip) {
            return plainly::ban(&req);
        }
        misbehave(&req.ip, &req.ipset)
    }

    fn unban(req: BanRequest) -> Result<String, Error> {
        #[cfg(feature = "without-admission")]
        if plain(&req.ip) {
            return plainly::unban(&req);
        }
        misbehave(&req.ip, &req.ipset)
    }

    fn entries(_ipset: String) -> Result<Vec<Entry>, Error> {
        Ok(Vec::new())
    }
}

/// The write each guard mode tries: method, path below the IPSet API,
/// parameters.
fn write(
    mode: &str,
    ipset: &str,
) -> Option<(&'static str, String, Vec<(&'static str, &'static str)>)> {
    let set = format!("/cluster/firewall/ipset/{ipset}");
    let post = |params: Vec<(&'static str, &'static str)>| Some(("POST", set.clone(), params));
    match mode {
        "delete-ipset" => Some(("DELETE", set.clone(), vec![])),
        "delete-ipset-force" => Some(("DELETE", set.clone(), vec![("force", "1")])),
        "rename-ipset" => Some((
            "POST",
            "/cluster/firewall/ipset".into(),
            vec![("name", "gone"), ("rename", "fail2ban")],
        )),
        "never-ban" => post(vec![("cidr", "10.1.2.3")]),
        "node" => post(vec![("cidr", "127.0.0.1")]),
        "low-half" => post(vec![("cidr", "0.0.0.0/1")]),
        "high-half" => post(vec![("cidr", "128.0.0.0/1")]),
        "wide-v6" => post(vec![("cidr", "2000::/3")]),
        "nomatch" => post(vec![("cidr", "198.51.100.9"), ("nomatch", "1")]),
        "digest" => post(vec![("cidr", "198.51.100.9"), ("digest", "0")]),
        "alias" => post(vec![("cidr", "dc/admins")]),
        "newline-comment" => post(vec![("cidr", "198.51.100.9"), ("comment", "x\n0.0.0.0/1")]),
        "other-ipset" => Some((
            "POST",
            "/cluster/firewall/ipset/other".into(),
            vec![("cidr", "198.51.100.9")],
        )),
        "delete-manual" => Some(("DELETE", format!("{set}/192.0.2.50"), vec![])),
        "put-manual" => Some((
            "PUT",
            format!("{set}/192.0.2.50"),
            vec![("comment", "mine now f2p:hostile/-/-")],
        )),
        _ => None,
    }
}

fn misbehave(mode: &str, ipset: &str) -> Result<String, Error> {
    if let Some((method, path, params)) = write(mode, ipset) {
        let params: Vec<(String, String)> = params
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        return pve::request(method, &path, &params)
            .map(|r| format!("PVE answered {method} {path}: {} {}", r.status, r.reason));
    }
    match mode {
        "odd-busy" => Err(Error::Busy("Zeitüberschreitung beim Sperren".into())),
        "odd-refused" => Err(Error::Refused(Refusal {
            status: 500,
            message: "Datei zu groß".into(),
            cause: RefusalCause::Capacity,
        })),
        "odd-unreachable" => Err(Error::Unreachable("keine Verbindung".into())),
        _ => misbehave_otherwise(mode),
    }
}

fn misbehave_otherwise(mode: &str) -> Result<String, Error> {
    match mode {
        "loop" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "users" => match pve::request("GET", "/access/users", &[]) {
            Ok(r) => Ok(format!("read users: {} {}", r.status, r.body)),
            Err(e) => Err(e),
        },
        "panic" => panic!("the hostile policy panics on purpose"),
        "file" => std::fs::read_to_string("/etc/passwd")
            .map(|text| format!("read /etc/passwd: {} bytes", text.len()))
            .map_err(|e| Error::Denied(format!("file: {e}"))),
        "env" => Ok(format!(
            "environment: {:?}",
            std::env::vars().collect::<Vec<_>>()
        )),
        "clock" => Ok(format!("clock: {:?}", std::time::SystemTime::now())),
        "socket" => std::net::TcpStream::connect("127.0.0.1:22")
            .map(|_| "connected".to_string())
            .map_err(|e| Error::Denied(format!("socket: {e}"))),
        other => Ok(format!("nothing hostile about '{other}'")),
    }
}

/// An IPv4 address, digits and dots: no mode.
#[cfg(feature = "without-admission")]
fn plain(ip: &str) -> bool {
    ip.contains('.') && ip.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// With `without-admission`, an address that names no mode is banned as a
/// plain policy would: one tagged entry, removed by unban.
#[cfg(feature = "without-admission")]
mod plainly {
    use super::{BanRequest, Error, pve};

    pub fn ban(req: &BanRequest) -> Result<String, Error> {
        let at = req.time.map_or(0, |t| t as i64);
        let expires = req
            .bantime
            .filter(|&b| b >= 0)
            .map_or("-".to_string(), |b| (at + b).to_string());
        let jail = req.jail.clone().unwrap_or_else(|| "-".into());
        let text = req.comment.clone().unwrap_or_default();
        let comment = format!("{text} f2p:{}/{jail}/{expires}", req.instance);
        let path = format!("/cluster/firewall/ipset/{}", req.ipset);
        let params = [
            ("cidr".to_string(), req.ip.clone()),
            ("comment".to_string(), comment),
        ];
        let r = pve::request("POST", &path, &params)?;
        if (200..300).contains(&r.status) || r.status == 400 {
            Ok(format!("added {}", req.ip))
        } else {
            Err(Error::Busy(format!("{} {}", r.status, r.reason)))
        }
    }

    pub fn unban(req: &BanRequest) -> Result<String, Error> {
        let path = format!("/cluster/firewall/ipset/{}/{}", req.ipset, req.ip);
        pve::request("DELETE", &path, &[])?;
        Ok(format!("removed {}", req.ip))
    }
}
