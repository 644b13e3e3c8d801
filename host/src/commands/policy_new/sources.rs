//! The sources `policy new` vendors into a new crate, embedded in the
//! binary when it is built: the SDK (`sdk/`) and the PVE model its test
//! host needs (`model/`). A test checks that these lists name every file
//! of those folders.

/// `(path, text)` of each file under `../<root>/`, embedded.
macro_rules! files {
    ($root:literal: $($path:literal),* $(,)?) => {
        &[$((
            $path,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../", $root, "/", $path)),
        )),*]
    };
}

/// The SDK crate, `fail2pvefw-sdk`.
pub const SDK: &[(&str, &str)] = files!("sdk":
    "Cargo.toml",
    "README.md",
    "wit/policy.wit",
    "src/admission.rs",
    "src/answers.rs",
    "src/bindings.rs",
    "src/cidr.rs",
    "src/comment.rs",
    "src/identity.rs",
    "src/imports.rs",
    "src/ipset.rs",
    "src/lib.rs",
    "src/policy.rs",
    "src/rules.rs",
    "src/tag.rs",
    "src/test_host/backend.rs",
    "src/test_host/guard.rs",
    "src/test_host/mod.rs",
    "src/test_host/tests.rs",
    "src/types.rs",
);

/// The PVE model crate, `pve-model`, which the SDK's test host answers with.
pub const MODEL: &[(&str, &str)] = files!("model":
    "Cargo.toml",
    "src/cidr.rs",
    "src/cluster.rs",
    "src/clusterfw/mod.rs",
    "src/clusterfw/options.rs",
    "src/clusterfw/parse.rs",
    "src/clusterfw/rules.rs",
    "src/clusterfw/write.rs",
    "src/context.rs",
    "src/digest.rs",
    "src/error.rs",
    "src/info.rs",
    "src/ipset.rs",
    "src/lib.rs",
    "src/params.rs",
    "src/pipeline.rs",
    "src/response.rs",
    "src/routes.rs",
    "src/text.rs",
);

/// The workspace's manifest: `[workspace.package]` holds what the model's
/// manifest inherits.
pub const WORKSPACE_MANIFEST: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"));

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Every file under `dir`, relative to `root`, sorted.
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_string(),
                );
            }
        }
    }

    fn listed(root: &str, subdirs: &[&str], top: &[&str]) -> Vec<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(root);
        let mut files: Vec<String> = top.iter().map(|f| f.to_string()).collect();
        for sub in subdirs {
            walk(&root, &root.join(sub), &mut files);
        }
        files.sort();
        files
    }

    fn names(files: &[(&str, &str)]) -> Vec<String> {
        let mut names: Vec<String> = files.iter().map(|(p, _)| p.to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn every_file_of_the_sdk_and_the_model_is_embedded() {
        assert_eq!(
            names(SDK),
            listed("sdk", &["src", "wit"], &["Cargo.toml", "README.md"]),
            "add the missing file to sources::SDK (or remove the gone one)"
        );
        assert_eq!(
            names(MODEL),
            listed("model", &["src"], &["Cargo.toml"]),
            "add the missing file to sources::MODEL (or remove the gone one)"
        );
    }
}
