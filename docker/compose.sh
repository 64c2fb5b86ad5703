#!/usr/bin/env bash
# docker-compose on docker/compose.yaml with this project's name, from any directory:
#   docker/compose.sh ps
#   docker/compose.sh exec etcd-0 etcdctl member list -w table
#   docker/compose.sh --profile scale up -d etcd-3
#   docker/compose.sh logs etcd-3
# Environment: COMPOSE_PROJECT_NAME (default etcd-bootstrap), ETCD_IMAGE, ETCD_CLIENT_PORT.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v docker-compose >/dev/null; then
  echo "compose.sh: docker-compose is not installed (Debian: apt-get install docker-compose)" >&2
  exit 1
fi
exec docker-compose -p "${COMPOSE_PROJECT_NAME:-etcd-bootstrap}" -f "$here/compose.yaml" "$@"
