//! The hidden `generate-docs DIR` command: man pages and shell completions
//! from the clap definition in `cli.rs`, so they never drift from `--help`.
//! The Debian package build runs it (see `packaging/build-deb.sh`).

use crate::cli::{Cli, DocsArgs};
use crate::error::{Failure, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::Path;

pub fn run(args: &DocsArgs) -> Result<String> {
    let failed = |what: &Path, e: std::io::Error| {
        Failure::config(format!("cannot write '{}': {e}", what.display()))
    };
    let man = args.dir.join("man");
    let completions = args.dir.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    }
    let cmd = Cli::command();
    let mut pages = vec![cmd.clone()];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(sub.clone().name(format!("fail2pvefw-{}", sub.get_name())));
    }
    for page in pages {
        let path = man.join(format!("{}.1", page.get_name()));
        let mut text = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut text)
            .map_err(|e| failed(&path, e))?;
        std::fs::write(&path, text).map_err(|e| failed(&path, e))?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = Cli::command();
        clap_complete::generate_to(shell, &mut cmd, "fail2pvefw", &completions)
            .map_err(|e| failed(&completions, e))?;
    }
    Ok(format!(
        "wrote man pages and completions into '{}'",
        args.dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_and_completions_are_written() {
        let dir = tempfile::tempdir().unwrap();
        run(&DocsArgs {
            dir: dir.path().into(),
        })
        .unwrap();
        let page = std::fs::read_to_string(dir.path().join("man/fail2pvefw.1")).unwrap();
        assert!(page.contains("doctor"), "{page}");
        assert!(dir.path().join("man/fail2pvefw-ban.1").exists());
        assert!(
            !dir.path().join("man/fail2pvefw-drain.1").exists(),
            "hidden commands get no page"
        );
        for file in ["fail2pvefw.bash", "_fail2pvefw", "fail2pvefw.fish"] {
            assert!(dir.path().join("completions").join(file).exists(), "{file}");
        }
    }
}
