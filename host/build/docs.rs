//! Man pages and shell completions from the clap definition (`src/cli/`),
//! so they never drift from `--help`. One place for it: `build.rs` writes
//! them for the Debian package on every build, the hidden `generate-docs`
//! command on request.
//!
//! Man pages are gzip-compressed as Debian policy wants them (cargo-deb
//! compresses only the assets it does not consider built, and everything
//! under `target/` is built), with no time stamp or file name in the gzip
//! header, so the same definition gives the same bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The shells completions are written for, and the file each one gets.
pub const COMPLETIONS: [(clap_complete::Shell, &str); 3] = [
    (clap_complete::Shell::Bash, "fail2pvefw.bash"),
    (clap_complete::Shell::Zsh, "_fail2pvefw"),
    (clap_complete::Shell::Fish, "fail2pvefw.fish"),
];

/// Writes `DIR/man/NAME.1.gz` for the command and each visible subcommand
/// (`fail2pvefw-ban.1.gz`, …) and `DIR/completions/*`; a page of a command
/// that no longer exists is removed. Returns the files written.
pub fn write(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let failed = |what: &Path, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("cannot write '{}': {e}", what.display()))
    };
    let man = dir.join("man");
    let completions = dir.join("completions");
    if man.exists() {
        std::fs::remove_dir_all(&man).map_err(|e| failed(&man, e))?;
    }
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    }
    let mut written = Vec::new();
    let name = cmd.get_name().to_string();
    let mut pages = vec![cmd.clone()];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(sub.clone().name(format!("{name}-{}", sub.get_name())));
    }
    for page in pages {
        let path = man.join(format!("{}.1.gz", page.get_name()));
        let mut roff = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut roff)
            .map_err(|e| failed(&path, e))?;
        std::fs::write(&path, gzip(&roff)?).map_err(|e| failed(&path, e))?;
        written.push(path);
    }
    for (shell, file) in COMPLETIONS {
        let path = completions.join(file);
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), &name, &mut script);
        std::fs::write(&path, script).map_err(|e| failed(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// gzip at the best compression, with a zero time stamp and no file name.
fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(data)?;
    encoder.finish()
}
