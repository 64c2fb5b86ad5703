#!/usr/bin/env bash
# Build the release binary as one statically linked executable and print its path.
# (glibc target with +crt-static; getrandom uses the syscall, not libc, so nothing is looked up
# at run time.)
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
  cargo build --release --locked --target "$target" --bin etcd-bootstrap >&2
# Cargo puts it under $CARGO_TARGET_DIR when that is set (relative to here, where cargo ran).
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
echo "$target_dir/$target/release/etcd-bootstrap"
