//! A hostile policy: `ban MODE` misbehaves as MODE says, so the host's tests
//! can prove each misbehaviour is contained.
//!
//! - `loop`: never returns;
//! - `alloc`: allocates without end;
//! - `users`: asks PVE for `/access/users`, which no policy is granted;
//! - `garbage`: `validate` answers a screenful of escape codes;
//! - `panic`: panics;
//! - `file`, `env`, `clock`, `socket`: tries WASI files, the environment,
//!   the system clock, a TCP connection.

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "policy",
    });
}

#[cfg(target_arch = "wasm32")]
bindings::export!(Hostile with_types_in bindings);

use bindings::exports::fail2pvefw::policy::action::{BanRequest, Entry, Guest};
use bindings::fail2pvefw::policy::pve;
use bindings::fail2pvefw::policy::types::Error;

pub struct Hostile;

impl Guest for Hostile {
    fn validate(req: BanRequest) -> Result<String, Error> {
        if req.ip == "garbage" {
            return Ok("\u{1b}[2J\u{1b}[31m pwned \n".repeat(500));
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
        misbehave(&req.ip)
    }

    fn unban(req: BanRequest) -> Result<String, Error> {
        misbehave(&req.ip)
    }

    fn entries(_ipset: String) -> Result<Vec<Entry>, Error> {
        Ok(Vec::new())
    }
}

fn misbehave(mode: &str) -> Result<String, Error> {
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
