//! A policy of the 0.1.0 world: it bans by POSTing the address as given.
//! The host of 0.2.0 must refuse to load it and say which version it needs.

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "policy",
    });
}

#[cfg(target_arch = "wasm32")]
bindings::export!(Old with_types_in bindings);

use bindings::exports::fail2pvefw::policy::action::{BanRequest, Entry, Guest};
use bindings::fail2pvefw::policy::pve;
use bindings::fail2pvefw::policy::types::Error;

pub struct Old;

impl Guest for Old {
    fn validate(req: BanRequest) -> Result<String, Error> {
        Ok(req.ip)
    }

    fn start(_ipset: String) -> Result<String, Error> {
        Ok("started".into())
    }

    fn check(_ipset: String) -> Result<String, Error> {
        Ok("checked".into())
    }

    fn ban(req: BanRequest) -> Result<String, Error> {
        let path = format!("/cluster/firewall/ipset/{}", req.ipset);
        let params = [("cidr".to_string(), req.ip.clone())];
        pve::request("POST", &path, &params).map(|r| format!("{} {}", r.status, r.reason))
    }

    fn unban(req: BanRequest) -> Result<String, Error> {
        Ok(format!("left {}", req.ip))
    }

    fn entries(_ipset: String) -> Result<Vec<Entry>, Error> {
        Ok(Vec::new())
    }
}
