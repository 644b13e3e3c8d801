//! `fail2pvefw policy new NAME [--dir DIR] [--sdk PATH]`: writes a policy
//! crate on the SDK, ready to `cargo test` natively and to build for
//! wasm32-wasip2 into a component `policy check` accepts.
//!
//! The binary carries the SDK's sources and the PVE model's (the test
//! host's PVE), embedded when it was built ([`sources`]), and writes them
//! into the crate as `vendor/fail2pvefw-sdk` and `vendor/pve-model`, path
//! dependencies: an installed fail2pvefw (a .deb) needs no source tree.
//! `--sdk PATH` depends on a checkout's `sdk/` instead.

mod sources;
mod template;

use crate::error::{Failure, Result};
use std::path::{Path, PathBuf};

/// The folder of the vendored SDK, beside the vendored model.
const VENDOR_SDK: &str = "vendor/fail2pvefw-sdk";
const VENDOR_MODEL: &str = "vendor/pve-model";

pub fn run(name: &str, dir: Option<&Path>, sdk: Option<&Path>) -> Result<String> {
    check_name(name)
        .map_err(|why| Failure::input(format!("'{name}' cannot name a policy crate: {why}")))?;
    let parent = dir.unwrap_or(Path::new("."));
    let target = match dir {
        Some(dir) => dir.join(name),
        None => PathBuf::from(name),
    };
    if target.exists() || target.is_symlink() {
        return Err(Failure::input(format!(
            "'{}' exists already; nothing was written",
            target.display()
        ))
        .hint("Choose another NAME or --dir, or move the folder away."));
    }
    let dependency = match sdk {
        Some(path) => template::path_dependency(&checkout(path)?),
        None => template::path_dependency(Path::new(VENDOR_SDK)),
    };
    let mut files = template::files(name, &dependency, sdk.is_none());
    if sdk.is_none() {
        files.extend(vendored());
    }
    write_all(parent, name, &files)?;
    let lib = name.replace('-', "_");
    Ok(format!(
        "wrote the policy crate '{}' ({} files{})\n\nNext:\n  cd {}\n  cargo test\n  \
         cargo build --target wasm32-wasip2 --release\n  \
         fail2pvefw policy check target/wasm32-wasip2/release/{lib}.wasm\n  \
         fail2pvefw --policy target/wasm32-wasip2/release/{lib}.wasm sandbox ban 203.0.113.7",
        target.display(),
        files.len(),
        if sdk.is_none() {
            ", the SDK and the PVE model vendored in vendor/"
        } else {
            ""
        },
        target.display(),
    ))
}

/// A crate name that is also a policy identity: 1 to 64 lower-case
/// letters, digits, `-` or `_`, starting with a letter; not a name of the
/// crates it depends on.
fn check_name(name: &str) -> std::result::Result<(), String> {
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("it must start with a lower-case letter".into());
    }
    if name.len() > 64 {
        return Err("it is longer than 64 characters".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(*c)))
    {
        return Err(format!(
            "it contains '{}' (use lower-case letters, digits, '-' and '_')",
            bad.escape_default()
        ));
    }
    if [
        "fail2pvefw-sdk",
        "fail2pvefw_sdk",
        "pve-model",
        "pve_model",
        "test",
    ]
    .contains(&name)
    {
        return Err("that is the name of a crate it uses".into());
    }
    fail2pvefw_sdk::identity::check_name(name)
}

/// The SDK of a checkout: PATH itself (its `Cargo.toml` names
/// `fail2pvefw-sdk`) or PATH/sdk; absolute.
fn checkout(path: &Path) -> Result<PathBuf> {
    let candidates = [path.to_path_buf(), path.join("sdk")];
    let found = candidates.iter().find(|dir| {
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|text| text.contains("name = \"fail2pvefw-sdk\""))
    });
    let Some(found) = found else {
        return Err(Failure::input(format!(
            "--sdk '{}' is not the SDK of a fail2pvefw checkout (no Cargo.toml of fail2pvefw-sdk there or in its sdk/)",
            path.display()
        )));
    };
    std::fs::canonicalize(found)
        .map_err(|e| Failure::input(format!("--sdk '{}': {e}", found.display())))
}

/// The SDK and the model, as `vendor/…` files of the new crate; their
/// manifests made to stand alone.
fn vendored() -> Vec<(PathBuf, String)> {
    let sdk = sources::SDK.iter().map(|(path, text)| {
        let text = if *path == "Cargo.toml" {
            sdk_manifest(text)
        } else {
            text.to_string()
        };
        (Path::new(VENDOR_SDK).join(path), text)
    });
    let model = sources::MODEL.iter().map(|(path, text)| {
        let text = if *path == "Cargo.toml" {
            standalone(text, sources::WORKSPACE_MANIFEST)
        } else {
            text.to_string()
        };
        (Path::new(VENDOR_MODEL).join(path), text)
    });
    sdk.chain(model).collect()
}

/// The SDK's manifest with the model beside it (`../pve-model`).
fn sdk_manifest(text: &str) -> String {
    text.replace("path = \"../model\"", "path = \"../pve-model\"")
}

/// A member's manifest without what it inherits from the workspace: each
/// `KEY.workspace = true` becomes `KEY = VALUE` of `[workspace.package]`.
fn standalone(manifest: &str, workspace: &str) -> String {
    let table: toml::Table = workspace.parse().unwrap_or_default();
    let package = table
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(toml::Value::as_table);
    manifest
        .lines()
        .map(|line| {
            let inherited = line
                .trim()
                .strip_suffix(".workspace = true")
                .and_then(|key| Some((key, package?.get(key)?)));
            match inherited {
                Some((key, value)) => format!("{key} = {value}"),
                None => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Writes the files into `parent/.NAME.new`, then renames it to
/// `parent/NAME`: no half-written crate is left behind.
fn write_all(parent: &Path, name: &str, files: &[(PathBuf, String)]) -> Result<()> {
    let staging = parent.join(format!(".{name}.new"));
    let failed = |what: &Path, e: std::io::Error| {
        let _ = std::fs::remove_dir_all(&staging);
        Failure::input(format!("cannot write '{}': {e}", what.display()))
    };
    let _ = std::fs::remove_dir_all(&staging);
    for (path, text) in files {
        let file = staging.join(path);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
        }
        std::fs::write(&file, text).map_err(|e| failed(&file, e))?;
    }
    let target = parent.join(name);
    std::fs::rename(&staging, &target).map_err(|e| failed(&target, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_crate_names_and_identities() {
        for good in ["subnet24", "my-policy", "a_b2"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", "24subnet", "My", "a b", "a.b", "fail2pvefw-sdk", "-x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn vendored_manifests_stand_alone() {
        let files = vendored();
        let text = |path: &str| {
            files
                .iter()
                .find(|(p, _)| p == Path::new(path))
                .map(|(_, t)| t.clone())
                .unwrap()
        };
        let sdk = text("vendor/fail2pvefw-sdk/Cargo.toml");
        assert!(sdk.contains("path = \"../pve-model\""), "{sdk}");
        let model = text("vendor/pve-model/Cargo.toml");
        assert!(!model.contains("workspace"), "{model}");
        let parsed: toml::Table = model.parse().unwrap();
        let package = parsed["package"].as_table().unwrap();
        assert_eq!(package["edition"].as_str(), Some("2024"));
        assert_eq!(package["version"].as_str(), Some(env!("CARGO_PKG_VERSION")));
        assert!(text("vendor/fail2pvefw-sdk/wit/policy.wit").contains("fail2pvefw:policy@0.2.0"));
    }

    #[test]
    fn a_crate_is_written_once_and_not_over_anything() {
        let dir = tempfile::tempdir().unwrap();
        let done = run("guard-test", Some(dir.path()), None).unwrap();
        assert!(
            done.contains("cargo build --target wasm32-wasip2 --release"),
            "{done}"
        );
        let root = dir.path().join("guard-test");
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("fail2pvefw-sdk = { path = \"vendor/fail2pvefw-sdk\" }"),
            "{manifest}"
        );
        assert!(root.join("vendor/pve-model/src/lib.rs").exists());
        assert!(root.join("src/lib.rs").exists() && root.join("README.md").exists());
        let again = run("guard-test", Some(dir.path()), None).unwrap_err();
        assert!(again.to_string().contains("exists already"), "{again}");
        assert!(!dir.path().join(".guard-test.new").exists());
    }

    #[test]
    fn sdk_points_at_a_checkout_instead() {
        let dir = tempfile::tempdir().unwrap();
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        run("from-checkout", Some(dir.path()), Some(&checkout)).unwrap();
        let root = dir.path().join("from-checkout");
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let sdk = std::fs::canonicalize(checkout.join("sdk")).unwrap();
        assert!(
            manifest.contains(&format!(
                "fail2pvefw-sdk = {{ path = {:?} }}",
                sdk.to_str().unwrap()
            )),
            "{manifest}"
        );
        assert!(!root.join("vendor").exists());
        let wrong = run("elsewhere", Some(dir.path()), Some(dir.path())).unwrap_err();
        assert!(wrong.to_string().contains("is not the SDK"), "{wrong}");
    }
}
