//! The Debian package (issues 7 and 17): built with cargo-deb from the
//! metadata in host/Cargo.toml, its files and modes checked with dpkg-deb,
//! lintian's verdict, and an upgrade with dpkg over a queue, pins and an
//! edited configuration.
//!
//! A release build takes minutes, so the tests package the binary this test
//! run already built, with the man pages and completions its build.rs wrote
//! beside it (`target/debug/assets/`, as `cargo deb`'s release build writes
//! `target/release/assets/`): both are staged where `cargo deb --no-build`
//! looks for a release build, in a target folder of the test's own.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
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

fn found(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn require_cargo_deb() {
    assert!(
        Command::new("cargo")
            .args(["deb", "--version"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "cargo-deb is not installed, so the Debian package cannot be built.\n\n\
         Install it (a few minutes; scripts/test does this):\n  cargo install cargo-deb --locked"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Builds the package from the test's own binary and build.rs's assets,
/// as `version` (e.g. `0.1.0-2`) or the crate's; returns the .deb.
fn build_package(dir: &Path, version: Option<&str>) -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_fail2pvefw"));
    let staged = dir.join("target/release");
    std::fs::create_dir_all(&staged).unwrap();
    // A copy: cargo-deb strips what it packages.
    std::fs::copy(bin, staged.join("fail2pvefw")).unwrap();
    let assets = bin.parent().unwrap().join("assets");
    assert!(
        assets.join("man/fail2pvefw.1.gz").exists(),
        "build.rs wrote no man pages beside the binary, in '{}'",
        assets.display()
    );
    copy_dir(&assets, &staged.join("assets"));
    let out = dir.join("out");
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace())
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .args(["deb", "-p", "fail2pvefw", "--no-build", "--fast", "-o"])
        .arg(&out);
    if let Some(version) = version {
        cmd.args(["--deb-version", version]);
    }
    run(&mut cmd);
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

fn gunzip(path: &Path) -> String {
    run(Command::new("gzip").arg("-dc").arg(path))
}

#[test]
fn deb_holds_the_files_with_their_modes() {
    require_cargo_deb();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let deb = build_package(dir.path(), None);
    let files = contents(&deb);
    let expect = [
        ("/usr/bin/fail2pvefw", "-rwxr-xr-x"),
        ("/etc/fail2pvefw/config.toml", "-rw-------"),
        ("/etc/fail2ban/action.d/fail2pvefw.conf", "-rw-r--r--"),
        ("/etc/fail2ban/action.d/fail2pvefw.py", "-rw-r--r--"),
        ("/usr/lib/systemd/system/fail2pvefw.service", "-rw-r--r--"),
        ("/usr/share/man/man1/fail2pvefw-serve.1.gz", "-rw-r--r--"),
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
        ("/usr/share/man/man1/fail2pvefw-dns.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/fail2pvefw.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/fail2pvefw-doctor.1.gz", "-rw-r--r--"),
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
        ("/usr/share/doc/fail2pvefw/copyright", "-rw-r--r--"),
        (
            "/usr/share/doc/fail2pvefw/changelog.Debian.gz",
            "-rw-r--r--",
        ),
        ("/usr/share/lintian/overrides/fail2pvefw", "-rw-r--r--"),
    ];
    for (path, mode) in expect {
        assert_eq!(
            files.get(path).map(String::as_str),
            Some(mode),
            "{path} in {files:#?}"
        );
    }
    assert!(
        !files
            .keys()
            .any(|f| f.starts_with("/usr/share/man/") && f.ends_with(".1")),
        "every man page is compressed: {files:#?}"
    );
    let conffiles = run(Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("conffiles"));
    for conffile in [
        "/etc/fail2pvefw/config.toml",
        "/etc/fail2ban/action.d/fail2pvefw.conf",
        "/etc/fail2ban/action.d/fail2pvefw.py",
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
    let unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/fail2pvefw.service")).unwrap();
    for line in [
        "ExecStart=/usr/bin/fail2pvefw serve",
        "RuntimeDirectory=fail2pvefw",
        "Restart=on-failure",
        "RestartPreventExitStatus=3",
    ] {
        assert!(unit.contains(line), "{line} in {unit}");
    }
    let action = std::fs::read_to_string(root.join("etc/fail2ban/action.d/fail2pvefw.py")).unwrap();
    assert_eq!(action, include_str!("../../action.d/fail2pvefw.py"));
    let timer =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/fail2pvefw-dns.timer")).unwrap();
    assert!(timer.contains("OnUnitActiveSec=5min"), "{timer}");
    let example = std::fs::read_to_string(root.join("etc/fail2pvefw/config.toml")).unwrap();
    assert_eq!(
        example,
        include_str!("../../packaging/config.example.toml"),
        "init replaces exactly this example"
    );
    let page = gunzip(&root.join("usr/share/man/man1/fail2pvefw-ban.1.gz"));
    assert!(
        page.starts_with(".ie") || page.contains(".TH fail2pvefw-ban"),
        "a roff page: {page}"
    );
    let copyright =
        std::fs::read_to_string(root.join("usr/share/doc/fail2pvefw/copyright")).unwrap();
    assert!(
        copyright.contains("Copyright: 2026 the fail2pvefw developers")
            && copyright.contains("License: MIT"),
        "{copyright}"
    );
    let changelog = gunzip(&root.join("usr/share/doc/fail2pvefw/changelog.Debian.gz"));
    assert_eq!(changelog, include_str!("../../packaging/changelog"));
}

#[test]
fn the_changelog_names_this_version() {
    // cargo-deb calls the package VERSION-1; lintian reads the changelog.
    let changelog = include_str!("../../packaging/changelog");
    let first = changelog.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "fail2pvefw ({}-1) unstable;",
            env!("CARGO_PKG_VERSION")
        )),
        "packaging/changelog needs an entry for {}-1 at the top: {first}",
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn lintian_reports_no_error() {
    if !found("lintian", "--version") {
        // CI installs it (scripts/test); elsewhere, say what is skipped.
        assert!(
            std::env::var_os("CI").is_none(),
            "lintian is missing on CI: scripts/test installs it (apt-get install lintian)"
        );
        eprintln!(
            "lintian is not installed: the package was not checked (apt-get install lintian)"
        );
        return;
    }
    require_cargo_deb();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let deb = build_package(dir.path(), None);
    let out = Command::new("lintian")
        .args(["--fail-on", "error", "--tag-display-limit", "0"])
        .arg(&deb)
        .stdin(Stdio::null())
        .output()
        .expect("run lintian");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("lintian:\n{report}{}", String::from_utf8_lossy(&out.stderr));
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(
        errors.is_empty() && out.status.success(),
        "lintian found errors:\n{}\n\n{report}",
        errors.join("\n")
    );
}

/// A dpkg database of its own under `root`: dpkg installs there as on a
/// machine (conffiles, upgrades), without touching this one.
struct DpkgRoot {
    root: PathBuf,
}

impl DpkgRoot {
    fn new(root: PathBuf) -> DpkgRoot {
        let admin = root.join("var/lib/dpkg");
        for dir in ["info", "updates", "triggers"] {
            std::fs::create_dir_all(admin.join(dir)).unwrap();
        }
        for file in ["status", "available"] {
            std::fs::write(admin.join(file), "").unwrap();
        }
        DpkgRoot { root }
    }

    /// `dpkg -i` with no terminal: a conffile question would fail it.
    /// Dependencies (libc6) are not in this database, so they are not checked.
    fn install(&self, deb: &Path) {
        run(Command::new("dpkg")
            .arg(format!("--root={}", self.root.display()))
            .args(["--log=/dev/null", "--force-depends", "-i"])
            .arg(deb));
    }

    fn query(&self, format: &str) -> String {
        run(Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                self.root.join("var/lib/dpkg").display()
            ))
            .args(["-W", &format!("-f={format}"), "fail2pvefw"]))
    }

    fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

#[test]
fn an_upgrade_keeps_queued_events_pins_and_the_edited_config() {
    require_cargo_deb();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let old_version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    let new_version = format!("{}-2", env!("CARGO_PKG_VERSION"));
    let old = build_package(&dir.path().join("old"), None);
    let new = build_package(&dir.path().join("new"), Some(&new_version));

    let machine = DpkgRoot::new(dir.path().join("root"));
    machine.install(&old);
    assert_eq!(machine.query("${Version}"), old_version);

    // The admin edits the configuration the package installed. The
    // fingerprint is not the node's, so the node is trusted by a pin that
    // `trust` stores in the state directory.
    let emu = pve_emulator::Emulator::start(support::options());
    let config = machine.path("/etc/fail2pvefw/config.toml");
    let state = machine.path("/var/lib/fail2pvefw");
    let stale = ["0F"; 32].join(":");
    let edited = format!(
        "# edited by the admin\n{}",
        emu.config_toml(&support::token(), "fail2ban", state.to_str().unwrap())
            .replace(&emu.fingerprint(), &stale)
    );
    std::fs::write(&config, &edited).unwrap();
    let bin = machine.path("/usr/bin/fail2pvefw");
    let fail2pvefw = |args: &[&str]| {
        let mut cmd = Command::new(&bin);
        cmd.arg("--config").arg(&config).args(args).env("TZ", "UTC");
        run(&mut cmd)
    };
    fail2pvefw(&["trust", "--yes"]);
    let pins = std::fs::read_to_string(state.join("trusted-fingerprints")).unwrap();
    assert!(pins.contains(&emu.fingerprint()), "{pins}");
    fail2pvefw(&[
        "--queue-only",
        "ban",
        "192.0.2.70",
        "--jail",
        "sshd",
        "--bantime",
        "3600",
    ]);
    fail2pvefw(&[
        "--queue-only",
        "ban",
        "192.0.2.71",
        "--jail",
        "sshd",
        "--bantime",
        "-1",
    ]);
    let pending = |status: String| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&status).unwrap()["queue"]["pending"].clone()
    };
    assert_eq!(pending(fail2pvefw(&["status", "--json"])), 2);
    assert!(emu.entries("fail2ban").unwrap().is_empty(), "only queued");

    machine.install(&new);
    assert_eq!(machine.query("${Version}"), new_version);

    // The edited configuration is still there, private, and still the
    // package's conffile (dpkg kept it without asking: the package's
    // version did not change).
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let conffiles = machine.query("${Conffiles}");
    let example_md5 =
        run(Command::new("md5sum").arg(workspace().join("packaging/config.example.toml")));
    let example_md5 = example_md5.split_whitespace().next().unwrap();
    assert!(
        conffiles
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["/etc/fail2pvefw/config.toml", example_md5]),
        "still a conffile, with the package's version recorded: {conffiles}"
    );
    assert!(
        !machine
            .path("/etc/fail2pvefw/config.toml.dpkg-new")
            .exists()
            && !machine
                .path("/etc/fail2pvefw/config.toml.dpkg-dist")
                .exists()
    );

    // Queue and pins survived: the new binary sends the queued bans to the
    // node it trusts by the stored pin.
    assert_eq!(
        std::fs::read_to_string(state.join("trusted-fingerprints")).unwrap(),
        pins
    );
    assert_eq!(pending(fail2pvefw(&["status", "--json"])), 2);
    fail2pvefw(&["sync"]);
    let mut cidrs: Vec<String> = emu
        .entries("fail2ban")
        .unwrap()
        .into_iter()
        .map(|e| e.cidr)
        .collect();
    cidrs.sort();
    assert_eq!(cidrs, ["192.0.2.70", "192.0.2.71"]);
    assert_eq!(pending(fail2pvefw(&["status", "--json"])), 0);
}
