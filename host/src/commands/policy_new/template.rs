//! The files of a new policy crate: its manifest, a `lib.rs` with every
//! export and native tests, a README, a `.gitignore`.

use std::path::{Path, PathBuf};

/// `{ path = "…" }`, the path quoted as TOML quotes it.
pub fn path_dependency(path: &Path) -> String {
    let quoted = toml::Value::String(path.to_string_lossy().into_owned()).to_string();
    format!("{{ path = {quoted} }}")
}

/// The crate's own files; `vendored` when the SDK is in `vendor/`.
pub fn files(name: &str, dependency: &str, vendored: bool) -> Vec<(PathBuf, String)> {
    let lib = name.replace('-', "_");
    let ty = type_name(name);
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{lib}}", &lib)
            .replace("{{type}}", &ty)
            .replace("{{dependency}}", dependency)
            .replace(
                "{{where}}",
                if vendored {
                    "vendored in vendor/ by `fail2pvefw policy new` (the SDK and the PVE model\n# its test host answers with)"
                } else {
                    "a checkout's sdk/ (`fail2pvefw policy new --sdk`)"
                },
            )
    };
    vec![
        (PathBuf::from("Cargo.toml"), fill(CARGO_TOML)),
        (PathBuf::from("src/lib.rs"), fill(LIB_RS)),
        (PathBuf::from("README.md"), fill(README)),
        (PathBuf::from(".gitignore"), "/target\n".to_string()),
    ]
}

/// `subnet-24_v2` → `Subnet24V2`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

const CARGO_TOML: &str = r#"# A fail2pvefw policy on fail2pvefw-sdk, written by `fail2pvefw policy new`.
#   cargo test                                     # natively, on the SDK's test host
#   cargo build --target wasm32-wasip2 --release   # the component:
#                                                  # target/wasm32-wasip2/release/{{lib}}.wasm
[package]
name = "{{name}}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the component; rlib: the native tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
# The SDK: {{where}}.
# Or a checkout's:  fail2pvefw-sdk = { path = "/path/to/fail2pvefw/sdk" }
# Or by git:        fail2pvefw-sdk = { git = "https://example.invalid/fail2pvefw" }
fail2pvefw-sdk = {{dependency}}

# A workspace of its own; the vendored crates are dependencies, not members.
[workspace]
exclude = ["vendor"]

# Small, and no unwinding: a panic stops the call (the host says so).
[profile.release]
opt-level = "s"
lto = true
strip = true
codegen-units = 1
panic = "abort"
"#;

const LIB_RS: &str = r#"//! {{name}}: a fail2pvefw policy.
//!
//! Every export of the WIT world `policy` is here, each doing what the
//! built-in policy does: ban adds the entry PVE stores for the address with
//! a tagged comment, unban removes it. Change what you need; `cargo test`
//! runs the tests below natively against the SDK's test host (an in-memory
//! PVE, store, clock, settings and log).

use fail2pvefw_sdk::ipset::{self, Added, Removed};
use fail2pvefw_sdk::{BanRequest, Entry, Error, Identity, Policy, comment, policy};

pub struct {{type}};

impl Policy for {{type}} {
    /// The host keeps this policy's store under the name: renaming or
    /// upgrading the .wasm keeps it.
    fn identity() -> Identity {
        Identity::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
    }

    /// The exact entry PVE will store, without any I/O: a usable IPSet
    /// name, PVE's spelling of the address, and the administrator's rules
    /// (never-ban, the PVE nodes, IPv6 widening). The SDK's default.
    fn validate(req: &BanRequest) -> Result<String, Error> {
        policy::validate(req)
    }

    /// fail2ban's actionstart: PVE answers and the IPSet exists.
    fn start(ipset: &str) -> Result<String, Error> {
        policy::start(ipset)
    }

    /// fail2ban's actioncheck: the IPSet is still there.
    fn check(ipset: &str) -> Result<String, Error> {
        policy::check(ipset)
    }

    /// Adds the entry, its comment ending with this instance's ownership
    /// tag (`f2p:INSTANCE/JAIL/EXPIRY`), so unban and sync can remove it.
    fn ban(req: &BanRequest) -> Result<String, Error> {
        let (set, entry) = policy::checked(req)?;
        match ipset::add(&set, entry.as_str(), &comment::for_ban(req))? {
            Added::Added => Ok(format!("added {entry} to IPSet '{set}'")),
            Added::AlreadyThere => Ok(format!("{entry} was already in IPSet '{set}'")),
        }
    }

    /// Removes exactly what ban stored; someone else's entry stays.
    fn unban(req: &BanRequest) -> Result<String, Error> {
        let (set, entry) = policy::checked(req)?;
        match ipset::remove(&set, entry.as_str())? {
            Removed::Removed => Ok(format!("{entry} is not in IPSet '{set}' any more")),
            Removed::LeftAlone(why) => Ok(format!("left {entry} alone: {why}")),
        }
    }

    /// Every entry of the IPSet, with the owner its tag names: `sync` and
    /// `status` read it.
    fn entries(ipset: &str) -> Result<Vec<Entry>, Error> {
        policy::entries(ipset)
    }
}

fail2pvefw_sdk::export_policy!({{type}});

#[cfg(test)]
mod tests {
    use super::*;
    use fail2pvefw_sdk::test_host::TestHost;

    #[test]
    fn a_ban_adds_a_tagged_entry_and_its_unban_removes_it() {
        let mut host = TestHost::new().ipset("fail2ban").at(1_700_000_000);
        let req = BanRequest {
            jail: Some("sshd".into()),
            bantime: Some(600),
            ..host.request("203.0.113.7")
        };
        assert_eq!(
            host.ban_with::<{{type}}>(&req),
            Ok("added 203.0.113.7 to IPSet 'fail2ban'".into())
        );
        let entries = host.entries("fail2ban");
        assert_eq!(
            entries[0].comment.as_deref(),
            Some("[2023/11/14 22:13:20] sshd f2p:test/sshd/1700000600")
        );
        assert_eq!(host.calls()[0].method, "POST");
        host.unban_with::<{{type}}>(&req).unwrap();
        assert!(host.cidrs("fail2ban").is_empty());
    }

    #[test]
    fn someone_elses_entry_is_left_alone() {
        let mut host = TestHost::new().entry("fail2ban", "192.0.2.50", Some("added by hand"));
        let words = host.unban::<{{type}}>("192.0.2.50").unwrap();
        assert!(
            words.starts_with("left 192.0.2.50 alone: not ours"),
            "{words}"
        );
        assert_eq!(host.cidrs("fail2ban"), ["192.0.2.50"]);
    }

    #[test]
    fn bad_input_is_refused_before_any_call() {
        let mut host = TestHost::new().ipset("fail2ban");
        assert!(matches!(
            host.ban::<{{type}}>("010.0.0.1"),
            Err(Error::InvalidInput(_))
        ));
        assert!(host.calls().is_empty());
    }
}
"#;

const README: &str = r#"# {{name}}

A [fail2pvefw](https://example.invalid/fail2pvefw) policy: a WebAssembly
component that decides which Proxmox VE API calls each fail2ban action
makes. Written by `fail2pvefw policy new {{name}}` on the policy SDK
(`fail2pvefw-sdk`); `src/lib.rs` implements every export.

```sh
cargo test                                     # natively, against the SDK's test host
cargo build --target wasm32-wasip2 --release   # the component
fail2pvefw policy check target/wasm32-wasip2/release/{{lib}}.wasm
fail2pvefw --policy target/wasm32-wasip2/release/{{lib}}.wasm sandbox ban 203.0.113.7 unban 203.0.113.7
```

The build needs the Rust target once: `rustup target add wasm32-wasip2`.
Then use it with `--policy FILE.wasm`, or `policy = "FILE.wasm"` in the
configuration: the same fail2pvefw binary, nothing rebuilt. Its store is
kept under its identity, the crate's name `{{name}}`.

The SDK's documentation is in its README and crate docs
(`cargo doc --open -p fail2pvefw-sdk`); the WIT world it targets is
`fail2pvefw-sdk`'s `wit/policy.wit`, which also documents the conventions
(the ownership tag, the comment, what PVE's answers mean).
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("subnet-24_v2"), "Subnet24V2");
        assert_eq!(type_name("guard"), "Guard");
    }

    #[test]
    fn every_placeholder_is_filled() {
        for (path, text) in files("my-policy", "{ path = \"x\" }", true) {
            assert!(!text.contains("{{"), "{}: {text}", path.display());
        }
    }
}
