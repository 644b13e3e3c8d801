//! `doctor`'s checks of `[crowdsec]`: the key file is private, the LAPI is
//! there (`GET /health`) and takes the key (`HEAD /v1/decisions?ip=…`).
//!
//! Never the stream and never `GET /v1/decisions` with the key: both move
//! the bouncer's place in the LAPI's stream (`last_pull`), and the running
//! bouncer would miss the decisions made in between.

use super::checklist::Doctor;
use crate::config::{Config, CrowdSec};
use crate::transport::lapi::{Lapi, LapiError};
use std::os::unix::fs::PermissionsExt;

/// The checks, when `[crowdsec]` is configured.
pub(super) fn check(doc: &mut Doctor, config: &Config) {
    let Some(cs) = &config.crowdsec else {
        return;
    };
    if let Some(path) = &cs.key_file {
        // The configuration refuses a key file others may read, so a file
        // that is there is private; say so.
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        doc.pass(
            "crowdsec key file permissions",
            &format!("'{}' is private (mode {mode:04o})", path.display()),
        );
    }
    let lapi = match Lapi::new(cs) {
        Ok(lapi) => lapi,
        Err(why) => {
            doc.fail_local("crowdsec LAPI reachable", &why, None);
            doc.skip("crowdsec key accepted", "no LAPI client");
            return;
        }
    };
    match lapi.health() {
        Ok(()) => doc.pass(
            "crowdsec LAPI reachable",
            &format!("{} answers /health", cs.url),
        ),
        Err(error) => {
            doc.fail(
                "crowdsec LAPI reachable",
                &error.describe(&cs.url),
                Some(&fix_unreachable(cs)),
            );
            doc.skip("crowdsec key accepted", "the LAPI did not answer");
            return;
        }
    }
    match lapi.check_key() {
        Ok(()) => doc.pass(
            "crowdsec key accepted",
            &format!("the LAPI takes the key from {}", cs.key_source),
        ),
        Err(LapiError::Forbidden) => doc.fail(
            "crowdsec key accepted",
            &LapiError::Forbidden.describe(&cs.url),
            Some(&format!(
                "on the LAPI's machine: cscli bouncers add fail2pvefw\nthen put the key it prints into {} (mode 0600)",
                cs.key_source
            )),
        ),
        Err(error) => doc.fail("crowdsec key accepted", &error.describe(&cs.url), None),
    }
}

fn fix_unreachable(cs: &CrowdSec) -> String {
    format!(
        "check [crowdsec] url ({}) and that the LAPI runs: systemctl status crowdsec; \
         cscli lapi status on its machine",
        cs.url
    )
}
