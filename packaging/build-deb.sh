#!/usr/bin/env bash
# Builds the Debian package target/debian/fail2pvefw_<version>_<arch>.deb:
# the release binary, its man pages and shell completions (generated from
# the CLI definition by the binary itself), then `cargo deb` from the
# [package.metadata.deb] of host/Cargo.toml. Extra arguments go to cargo deb.
# Needs cargo-deb: cargo install cargo-deb --locked
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -p fail2pvefw
"$target/release/fail2pvefw" generate-docs "$target/release/assets"
cargo deb -p fail2pvefw --no-build "$@"
