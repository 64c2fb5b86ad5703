#!/usr/bin/env bash
# Fetch Debian's etcd-server and etcd-client packages of one etcd release (etcd; etcdctl and
# etcdutl) from Debian's unstable suite and unpack them into DEST: DEST/usr/bin/{etcd,etcdctl,etcdutl}.
# Nothing is installed and the machine's apt sources stay as they are: apt reads a private source
# list and keeps its lists in a temporary directory (root not needed). Once DEST holds the three
# binaries of that release, nothing is fetched again.
#
# Usage: scripts/fetch-etcd-debian.sh DEST [VERSION]     (VERSION default 3.5.30)
# Prints DEST/usr/bin on stdout; says what it does on stderr.
set -euo pipefail
dest="${1:?usage: fetch-etcd-debian.sh DEST [VERSION]}"
version="${2:-3.5.30}"
say() { echo "fetch-etcd-debian.sh: $*" >&2; }

# Whether the etcd at $1 says it is $version. Its output is read whole first: `etcd --version |
# grep -q` under pipefail fails whenever grep's early exit makes etcd's next write a SIGPIPE.
says_version() {
  local said
  said="$("$1" --version 2>/dev/null)" || return 1
  grep -qx "etcd Version: ${version}" <<<"$said"
}

bin="$dest/usr/bin"
if [ -x "$bin/etcd" ] && [ -x "$bin/etcdctl" ] && [ -x "$bin/etcdutl" ] && says_version "$bin/etcd"; then
  echo "$bin"
  exit 0
fi
for tool in apt-get apt-cache dpkg-deb; do
  if ! command -v "$tool" >/dev/null; then
    say "$tool not found: this fetch needs Debian's apt and dpkg (or give the binaries yourself)"
    exit 1
  fi
done
say "fetching etcd ${version} (Debian unstable's etcd-server and etcd-client) into ${dest}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian unstable main" \
  >"$work/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/nonexistent
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1)
# apt's sandbox user cannot write the temporary directory: it says so, and fetches as this user.
quiet() { grep -v 'unsandboxed' >&2 || true; }
apt-get "${apt_opts[@]}" update -qq 2>&1 | quiet
deb_version="$(apt-cache "${apt_opts[@]}" madison etcd-server |
  awk -v v="${version}" '$3 ~ "^" v "-" {print $3; exit}')"
if [ -z "$deb_version" ]; then
  say "Debian unstable has no etcd-server ${version}; it has:"
  apt-cache "${apt_opts[@]}" madison etcd-server >&2 || true
  exit 1
fi
(cd "$work/debs" && apt-get "${apt_opts[@]}" download -qq \
  "etcd-server=${deb_version}" "etcd-client=${deb_version}" 2>&1 | quiet)
rm -rf "$dest.partial"
mkdir -p "$dest.partial"
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$dest.partial"
done
if ! says_version "$dest.partial/usr/bin/etcd"; then
  say "the unpacked etcd does not say it is ${version}:"
  "$dest.partial/usr/bin/etcd" --version >&2 || true
  exit 1
fi
rm -rf "$dest"
mv "$dest.partial" "$dest"
say "etcd ${version} (Debian ${deb_version}) is in ${bin}"
echo "$bin"
