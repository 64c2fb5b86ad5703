#!/usr/bin/env bash
# Build the image (no registry needed), start the 3-member cluster, wait until every member is
# healthy, and print how to talk to it. Run again at any time: it is idempotent.
# Environment: COMPOSE_PROJECT_NAME (default etcd-bootstrap), ETCD_IMAGE (default
# etcd-bootstrap:latest), ETCD_CLIENT_PORT (default 2379), and build.sh's ETCD_DIR.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export ETCD_IMAGE="${ETCD_IMAGE:-etcd-bootstrap:latest}"
export ETCD_CLIENT_PORT="${ETCD_CLIENT_PORT:-2379}"
compose() { "$here/compose.sh" "$@"; }

for tool in docker docker-compose; do
  if ! command -v "$tool" >/dev/null; then
    echo "up.sh: $tool is not installed (Debian: apt-get install docker.io docker-compose)" >&2
    exit 1
  fi
done
if ! docker info >/dev/null 2>&1; then
  echo "up.sh: cannot reach the Docker daemon (is it running, and may this user use it?)" >&2
  exit 1
fi

IMAGE="$ETCD_IMAGE" "$here/build.sh" >/dev/null
compose up -d etcd-0 etcd-1 etcd-2

echo "waiting for the members to form a healthy cluster..." >&2
deadline=$((SECONDS + 300))
for member in etcd-0 etcd-1 etcd-2; do
  until compose exec -T "$member" etcdctl endpoint health --command-timeout=3s >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      echo "up.sh: $member is not healthy after 300s; its last log lines:" >&2
      compose logs --tail=40 "$member" >&2
      exit 1
    fi
    sleep 1
  done
done
compose exec -T etcd-0 etcdctl member list -w table

project="${COMPOSE_PROJECT_NAME:-etcd-bootstrap}"
cat <<MSG

etcd is up: 3 members (etcd-0, etcd-1, etcd-2), compose project "$project".

  client URL (etcd-0):  http://127.0.0.1:$ETCD_CLIENT_PORT
  with etcdctl here:    etcdctl --endpoints http://127.0.0.1:$ETCD_CLIENT_PORT put hello world
  from a member:        docker/compose.sh exec etcd-1 etcdctl get hello
  health:               docker/compose.sh exec etcd-0 etcdctl endpoint health --cluster
  decisions:            docker/compose.sh logs etcd-0 | grep decision=
  add a 4th member:     docker/compose.sh --profile scale up -d etcd-3
  start the sidecars:   docker/compose.sh --profile sidecar up -d
  tear down:            docker/down.sh   (removes the containers, network and data volumes)
MSG
