#!/usr/bin/env bash
# Build the image (no registry needed), start the 3-member cluster, wait until every member is
# healthy, and print how to talk to it. Run again at any time: with nothing changed it rebuilds
# nothing and re-creates nothing; after `docker/compose.sh stop` it starts every member and
# sidecar that was there (etcd-3 included).
# Environment: COMPOSE_PROJECT_NAME (default etcd-bootstrap), ETCD_IMAGE (default
# etcd-bootstrap:latest), ETCD_CLIENT_PORT (default 2379), ETCD_COMPOSE, and build.sh's ETCD_DIR.
# ETCD_CLIENT_PORT and ETCD_IMAGE are remembered in docker/.state/<project>.env for docker/compose.sh
# and later runs; give them again only to change them.
# ETCD_RESTORE_FROM=file:///backups/<snapshot> (as `backup` printed it, the snapshot in
# ETCD_BACKUP_DIR, default docker/backups) starts the members from that snapshot where their
# volumes are empty (after docker/down.sh): RESTORE. Not remembered: the next docker/up.sh without
# it re-creates the members without it, on their restored volumes (EXISTING).
# Exit status: 0 when the cluster is healthy, 1 otherwise (one line says why).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=docker/lib.sh
. "$here/lib.sh"
start=$SECONDS
step() { echo "up.sh: [$1] $2 ($((SECONDS - start)) s so far)" >&2; }

command -v docker >/dev/null || die up.sh "docker is not installed (Debian: apt-get install docker.io)"
pick_compose up.sh
docker info >/dev/null 2>&1 ||
  die up.sh "cannot reach the Docker daemon: is it running, and may this user use it?"

# Given now, else remembered (or what etcd-0 was created with), else the default.
export ETCD_CLIENT_PORT="${ETCD_CLIENT_PORT:-$(kept_setting ETCD_CLIENT_PORT)}"
export ETCD_CLIENT_PORT="${ETCD_CLIENT_PORT:-$DEFAULT_CLIENT_PORT}"
export ETCD_IMAGE="${ETCD_IMAGE:-$(kept_setting ETCD_IMAGE)}"
export ETCD_IMAGE="${ETCD_IMAGE:-$DEFAULT_IMAGE}"
case "$ETCD_CLIENT_PORT" in
  '' | *[!0-9]*) die up.sh "ETCD_CLIENT_PORT=$ETCD_CLIENT_PORT is not a port number: give one from 1 to 65535" ;;
esac
((ETCD_CLIENT_PORT >= 1 && ETCD_CLIENT_PORT <= 65535)) ||
  die up.sh "ETCD_CLIENT_PORT=$ETCD_CLIENT_PORT is not a port number: give one from 1 to 65535"

# True when nothing listens on 127.0.0.1:PORT and it can be bound. SO_REUSEADDR as Docker's
# proxy has it: connections in TIME_WAIT from earlier clients do not make the port busy.
port_free() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket,sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
  else
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# A restore names a snapshot that is in the host directory, else nothing starts.
if [ -n "${ETCD_RESTORE_FROM:-}" ]; then
  snapshot="${ETCD_RESTORE_FROM#file:///backups/}"
  case "$snapshot" in
    "$ETCD_RESTORE_FROM" | '' | */*) die up.sh "ETCD_RESTORE_FROM=$ETCD_RESTORE_FROM is not file:///backups/<snapshot>: give a URL as the backup printed it (docker/compose.sh --profile backup run --rm backup backup list file:///backups)" ;;
  esac
  [ -f "$ETCD_BACKUP_DIR/$snapshot.manifest.json" ] ||
    die up.sh "snapshot $snapshot is not in ETCD_BACKUP_DIR=$ETCD_BACKUP_DIR (no $snapshot.manifest.json there): set ETCD_BACKUP_DIR to the directory the backup wrote to; nothing was started"
fi

# Before starting anything: the client port must be free, unless this project's etcd-0 holds it.
etcd0="$(container_of etcd-0)"
published=
if [ -n "$etcd0" ] && [ "$(docker inspect -f '{{.State.Running}}' "$etcd0")" = true ]; then
  published="$(docker port "$etcd0" 2379/tcp 2>/dev/null | sed -n 1p)"
fi
if [ "$published" != "127.0.0.1:$ETCD_CLIENT_PORT" ] && ! port_free "$ETCD_CLIENT_PORT"; then
  suggestion=23790
  while ((suggestion < 23890)) && ! port_free "$suggestion"; do suggestion=$((suggestion + 1)); done
  die up.sh "127.0.0.1:$ETCD_CLIENT_PORT (etcd-0's client port) is already in use, perhaps by another etcd (see: ss -ltnp 'sport = :$ETCD_CLIENT_PORT'); nothing was started. Choose another port: ETCD_CLIENT_PORT=$suggestion docker/up.sh (remembered for later commands)"
fi

# The default image is (re)built from this tree, and kept when nothing changed; an image named
# in ETCD_IMAGE that exists (built with docker/build.sh from an etcd release of your choice, or
# pulled) is used as it is.
if [ "$ETCD_IMAGE" != "$DEFAULT_IMAGE" ] && docker image inspect "$ETCD_IMAGE" >/dev/null 2>&1; then
  step 1/3 "image $ETCD_IMAGE: using it as it is (docker/build.sh rebuilds it)"
else
  step 1/3 "image $ETCD_IMAGE (docker/build.sh; a first build compiles etcd-bootstrap: minutes)"
  IMAGE="$ETCD_IMAGE" "$here/build.sh" >/dev/null
fi
remember

# Every member that exists (etcd-3 after a scale-up), else the initial three.
members=(etcd-0 etcd-1 etcd-2)
profiles=()
if [ -n "$(container_of etcd-3)" ]; then
  members+=(etcd-3)
  profiles=(--profile scale)
fi
step 2/3 "starting ${members[*]} (compose project \"$project\", $("${COMPOSE[@]}" version --short 2>/dev/null || echo compose))"
compose "${profiles[@]}" up -d --no-deps "${members[@]}"
# Sidecars that were there (stopped by `docker/compose.sh stop`, or left beside an old member).
sync_sidecars

step 3/3 "waiting for the members to form a healthy cluster (usually 10 to 30 s; at most 300 s)"
deadline=$((SECONDS + 300))
for member in "${members[@]}"; do
  until compose exec -T "$member" etcdctl endpoint health --command-timeout=3s >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      echo "up.sh: $member is not healthy after 300 s; its last log lines:" >&2
      compose logs --tail=40 "$member" >&2
      exit 1
    fi
    sleep 1
  done
done
compose exec -T etcd-0 etcdctl member list -w table

cat <<MSG

etcd is up: ${#members[@]} members (${members[*]}), compose project "$project", in $((SECONDS - start)) s.

  client URL (etcd-0):  http://127.0.0.1:$ETCD_CLIENT_PORT
  with etcdctl here:    etcdctl --endpoints http://127.0.0.1:$ETCD_CLIENT_PORT put hello world
  from a member:        docker/compose.sh exec etcd-1 etcdctl get hello
  health:               docker/compose.sh exec etcd-0 etcdctl endpoint health --cluster
  decisions:            docker/compose.sh logs etcd-0 | grep decision=
  add a 4th member:     docker/compose.sh --profile scale up -d etcd-3
  start the sidecars:   docker/compose.sh --profile sidecar up -d
  tear down:            docker/down.sh   (removes the containers, network and data volumes)
MSG
