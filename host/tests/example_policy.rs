//! `examples/subnet-escalation`, built here for wasm32-wasip2, changes what
//! `ban` does when loaded with `--policy` by the same `fail2pvefw` binary:
//! the binary is byte-identical before the example is built and after it ran.

mod support;
mod wasm_build;

use std::path::Path;
use support::Setup;

fn binary_digest() -> Vec<u8> {
    let bytes = std::fs::read(env!("CARGO_BIN_EXE_fail2pvefw")).unwrap();
    ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .to_vec()
}

#[test]
fn example_policy_escalates_to_the_subnet_with_the_same_binary() {
    let before = binary_digest();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/subnet-escalation");
    let wasm = wasm_build::build(&dir, "subnet_escalation", &[]);
    let policy = wasm.to_str().unwrap();

    let s = Setup::new();
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!(
        "{text}\n[policy_settings]\nthreshold = 3\nwindow = 600\n"
    ));

    // The built-in policy: three bans, three entries.
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        let r = s.run(&["-f", "ban", ip]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    assert_eq!(s.cidrs().len(), 3);

    // The example: the third ban in 203.0.113.0/24 becomes the subnet.
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let r = s.run(&["--policy", policy, "-f", "ban", ip]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let ours: Vec<String> = s
        .cidrs()
        .into_iter()
        .filter(|c| c.starts_with("203."))
        .collect();
    assert_eq!(ours, ["203.0.113.0/24"]);

    // Unbans stay consistent: the subnet goes with its last member.
    for (ip, left) in [("203.0.113.1", 1), ("203.0.113.2", 1), ("203.0.113.3", 0)] {
        let r = s.run(&["--policy", policy, "-f", "unban", ip]);
        assert_eq!(r.code, 0, "{r:?}");
        let n = s.cidrs().iter().filter(|c| c.starts_with("203.")).count();
        assert_eq!(n, left, "after unban {ip}: {:?}", s.cidrs());
    }

    let check = support::run_binary(&["policy", "check", policy]);
    assert_eq!(check.code, 0, "{check:?}");
    assert_eq!(binary_digest(), before, "the fail2pvefw binary changed");
}
