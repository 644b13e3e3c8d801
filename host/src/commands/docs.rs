//! The hidden `generate-docs DIR` command: the man pages and shell
//! completions `build.rs` writes for the Debian package (into
//! `target/<profile>/assets/`), into any folder, with the same code
//! (`build/docs.rs`).

use crate::cli::{Cli, DocsArgs};
use crate::error::{Failure, Result};
use clap::CommandFactory;

#[path = "../../build/docs.rs"]
mod pages;

pub fn run(args: &DocsArgs) -> Result<String> {
    pages::write(Cli::command(), &args.dir).map_err(|e| Failure::config(e.to_string()))?;
    Ok(format!(
        "wrote man pages and completions into '{}'",
        args.dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn man_pages_and_completions_are_written() {
        let dir = tempfile::tempdir().unwrap();
        run(&DocsArgs {
            dir: dir.path().into(),
        })
        .unwrap();
        let mut page = String::new();
        flate2::read::GzDecoder::new(
            std::fs::File::open(dir.path().join("man/fail2pvefw.1.gz")).unwrap(),
        )
        .read_to_string(&mut page)
        .unwrap();
        assert!(page.contains("doctor"), "{page}");
        assert!(dir.path().join("man/fail2pvefw-ban.1.gz").exists());
        assert!(
            !dir.path().join("man/fail2pvefw-drain.1.gz").exists(),
            "hidden commands get no page"
        );
        for (_, file) in pages::COMPLETIONS {
            assert!(dir.path().join("completions").join(file).exists(), "{file}");
        }
    }

    #[test]
    fn pages_are_the_same_bytes_each_time() {
        // No time stamp in the gzip header: a rebuild changes nothing.
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for dir in [&a, &b] {
            run(&DocsArgs {
                dir: dir.path().into(),
            })
            .unwrap();
        }
        let page =
            |d: &tempfile::TempDir| std::fs::read(d.path().join("man/fail2pvefw.1.gz")).unwrap();
        assert_eq!(page(&a), page(&b));
    }
}
