//! The Debian package (issue 7): built with cargo-deb from the metadata in
//! host/Cargo.toml, then its files and modes checked with dpkg-deb.
//!
//! A release build takes minutes, so the test packages the binary this test
//! run already built: it stages it where `cargo deb --no-build` looks for a
//! release build, in a target folder of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{all}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn require_cargo_deb() {
    let found = Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "cargo-deb is not installed, so the Debian package cannot be built.\n\n\
         Install it (a few minutes; .ci/run does this):\n  cargo install cargo-deb --locked"
    );
}

/// Builds the package from the test's own binary; returns the .deb.
fn build_package(dir: &Path) -> PathBuf {
    let staged = dir.join("target/release");
    std::fs::create_dir_all(&staged).unwrap();
    // A copy: cargo-deb strips what it packages.
    std::fs::copy(env!("CARGO_BIN_EXE_fail2pvefw"), staged.join("fail2pvefw")).unwrap();
    run(Command::new(staged.join("fail2pvefw"))
        .arg("generate-docs")
        .arg(staged.join("assets")));
    let out = dir.join("out");
    run(Command::new("cargo")
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .args(["deb", "-p", "fail2pvefw", "--no-build", "--fast", "-o"])
        .arg(&out));
    let deb = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"));
    deb.expect("cargo deb wrote no .deb")
}

/// `dpkg-deb -c`: path → mode string, e.g. `-rwxr-xr-x`.
fn contents(deb: &Path) -> BTreeMap<String, String> {
    run(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path = fields.last()?.trim_start_matches('.').to_string();
            Some((path, fields.first()?.to_string()))
        })
        .collect()
}

#[test]
fn deb_holds_the_files_with_their_modes() {
    require_cargo_deb();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let deb = build_package(dir.path());
    let files = contents(&deb);
    let expect = [
        ("/usr/bin/fail2pvefw", "-rwxr-xr-x"),
        ("/etc/fail2pvefw/config.toml", "-rw-------"),
        ("/etc/fail2ban/action.d/fail2pvefw.conf", "-rw-r--r--"),
        (
            "/usr/lib/systemd/system/fail2pvefw-sync.service",
            "-rw-r--r--",
        ),
        (
            "/usr/lib/systemd/system/fail2pvefw-sync.timer",
            "-rw-r--r--",
        ),
        (
            "/usr/lib/systemd/system/fail2pvefw-crowdsec.service",
            "-rw-r--r--",
        ),
        (
            "/usr/lib/systemd/system/fail2pvefw-dns.service",
            "-rw-r--r--",
        ),
        ("/usr/lib/systemd/system/fail2pvefw-dns.timer", "-rw-r--r--"),
        ("/usr/share/man/man1/fail2pvefw-dns.1", "-rw-r--r--"),
        ("/usr/share/man/man1/fail2pvefw.1", "-rw-r--r--"),
        ("/usr/share/man/man1/fail2pvefw-doctor.1", "-rw-r--r--"),
        (
            "/usr/share/bash-completion/completions/fail2pvefw",
            "-rw-r--r--",
        ),
        (
            "/usr/share/zsh/vendor-completions/_fail2pvefw",
            "-rw-r--r--",
        ),
        (
            "/usr/share/fish/vendor_completions.d/fail2pvefw.fish",
            "-rw-r--r--",
        ),
    ];
    for (path, mode) in expect {
        assert_eq!(
            files.get(path).map(String::as_str),
            Some(mode),
            "{path} in {files:#?}"
        );
    }
    let conffiles = run(Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("conffiles"));
    for conffile in [
        "/etc/fail2pvefw/config.toml",
        "/etc/fail2ban/action.d/fail2pvefw.conf",
    ] {
        assert!(
            conffiles.lines().any(|l| l.trim() == conffile),
            "{conffile} is not a conffile: {conffiles}"
        );
    }

    // What was packaged runs, and the files are the project's.
    let root = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let version = run(Command::new(root.join("usr/bin/fail2pvefw")).arg("--version"));
    assert!(version.starts_with("fail2pvefw "), "{version}");
    let timer =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/fail2pvefw-sync.timer")).unwrap();
    assert!(timer.contains("OnUnitActiveSec=5min"), "{timer}");
    let service =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/fail2pvefw-sync.service"))
            .unwrap();
    assert!(
        service.contains("ExecStart=/usr/bin/fail2pvefw sync"),
        "{service}"
    );
    let timer =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/fail2pvefw-dns.timer")).unwrap();
    assert!(timer.contains("OnUnitActiveSec=5min"), "{timer}");
    let example = std::fs::read_to_string(root.join("etc/fail2pvefw/config.toml")).unwrap();
    assert_eq!(
        example,
        include_str!("../../packaging/config.example.toml"),
        "init replaces exactly this example"
    );
}
