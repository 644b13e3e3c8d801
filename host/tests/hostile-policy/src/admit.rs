//! A hostile `admission`: the first candidate's scenario says how.
//!
//! - `invent`: chooses a network no decision asks for (`10.0.0.0/8`), an
//!   aggregate that holds some (`203.0.113.0/24`), then every candidate in
//!   reverse order, with a comment that breaks lines and claims an owner,
//!   and leaves nothing out;
//! - `loop`: never returns;
//! - `pve`: asks PVE for the IPSet while choosing, and says what it got.

use crate::Hostile;
use crate::bindings::exports::fail2pvefw::policy::admission::{
    Admitted, Budget, Candidate, Chosen, Guest,
};
use crate::bindings::fail2pvefw::policy::pve;
use crate::bindings::fail2pvefw::policy::types::Error;

impl Guest for Hostile {
    fn admit(candidates: Vec<Candidate>, budget: Budget) -> Result<Admitted, Error> {
        let mode = candidates
            .first()
            .map(|c| c.scenario.clone())
            .unwrap_or_default();
        match mode.as_str() {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "pve" => {
                let path = format!("/cluster/firewall/ipset/{}", budget.ipset);
                match pve::request("GET", &path, &[]) {
                    Ok(r) => Err(Error::InvalidInput(format!("read the IPSet: {}", r.status))),
                    Err(e) => Err(e),
                }
            }
            _ => {
                let comment = "evil\nline f2p:evil/crowdsec/1".to_string();
                let mut chosen = vec![
                    Chosen {
                        entry: "10.0.0.0/8".into(),
                        comment: comment.clone(),
                    },
                    Chosen {
                        entry: "203.0.113.0/24".into(),
                        comment: comment.clone(),
                    },
                ];
                for c in candidates.iter().rev() {
                    chosen.push(Chosen {
                        entry: c.entry.clone(),
                        comment: comment.clone(),
                    });
                }
                Ok(Admitted {
                    chosen,
                    left_out: Vec::new(),
                })
            }
        }
    }
}
