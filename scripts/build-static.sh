#!/usr/bin/env bash
# Build the release binary as one statically linked executable and print its path on stdout; on
# stderr, progress and then its size (the one place the size is measured: see README "Building").
# (glibc target with +crt-static; getrandom uses the syscall, not libc, so nothing is looked up
# at run time.) A binary that cargo finds current is reused as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
say() { echo "build-static.sh: $*" >&2; }

# Cargo puts it under $CARGO_TARGET_DIR when that is set (relative to here, where cargo ran).
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
bin="$target_dir/$target/release/etcd-bootstrap"

# At most this many crates to compile: every package in the lock file.
total="$(grep -c '^name = ' Cargo.lock || true)"
log="$(mktemp "${TMPDIR:-/tmp}/build-static.XXXXXX")"
trap 'rm -f "$log"' EXIT
start=$SECONDS
compiled=0
# Cargo's own output goes to the log; a person sees one line per 25 crates. Cargo decides whether
# the binary is current (its fingerprints cover the sources, the lock file and these flags).
progress() {
  local line
  while IFS= read -r line; do
    printf '%s\n' "$line" >>"$log"
    case "$line" in
      *" Compiling "*)
        compiled=$((compiled + 1))
        if ((compiled == 1)); then
          say "compiling (a first build takes several minutes: about 8 on 2 cores; later ones seconds)"
        elif ((compiled % 25 == 0)); then
          say "  $compiled of at most $total crates compiled ($((SECONDS - start)) s)"
        fi
        ;;
    esac
  done
  # The count is needed after the pipe's subshell ends.
  echo "$compiled" >"$log.count"
}
set +e
RUSTFLAGS="-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
  cargo build --release --locked --color never --target "$target" --bin etcd-bootstrap 2>&1 | progress
status=${PIPESTATUS[0]}
set -e
compiled="$(cat "$log.count" 2>/dev/null || echo 0)"
rm -f "$log.count"
if [ "$status" != 0 ]; then
  say "cargo build failed (exit $status); its last lines:"
  tail -n 40 "$log" >&2
  exit "$status"
fi
if [ "$compiled" = 0 ]; then
  say "static etcd-bootstrap is up to date (reused)"
else
  say "compiled $compiled crate(s) in $((SECONDS - start)) s"
fi
size="$(stat -c %s "$bin")"
say "$bin: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }') MiB)"
echo "$bin"
