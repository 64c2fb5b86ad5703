#!/usr/bin/env bash
# docker compose on docker/compose.yaml with this project's name and remembered settings, from any
# directory:
#   docker/compose.sh ps
#   docker/compose.sh exec etcd-0 etcdctl member list -w table
#   docker/compose.sh --profile scale up -d etcd-3
#   docker/compose.sh logs etcd-3
# Uses `docker compose` (v2) where it works, else `docker-compose` (v1); ETCD_COMPOSE picks one.
# ETCD_CLIENT_PORT and ETCD_IMAGE are the ones docker/up.sh remembered (docker/.state/), or else
# those etcd-0 was created with, whatever the environment says: change them with docker/up.sh. After a command that can start or re-create
# a member, each running member's sidecar is brought back beside it (see lib.sh).
# Environment: COMPOSE_PROJECT_NAME (default etcd-bootstrap), ETCD_COMPOSE, ETCD_BACKUP_DIR (host
# directory of `--profile backup run --rm backup`, default docker/backups), ETCD_RESTORE_FROM.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=docker/lib.sh
. "$here/lib.sh"
pick_compose compose.sh

for var in ETCD_CLIENT_PORT ETCD_IMAGE; do
  kept="$(kept_setting "$var")"
  if [ -n "$kept" ]; then
    if [ -n "${!var:-}" ] && [ "${!var}" != "$kept" ]; then
      echo "compose.sh: using $var=$kept, as docker/up.sh started the cluster (the environment says ${!var}; to change it: $var=${!var} docker/up.sh)" >&2
    fi
    export "$var=$kept"
  fi
done
export ETCD_CLIENT_PORT="${ETCD_CLIENT_PORT:-$DEFAULT_CLIENT_PORT}"
export ETCD_IMAGE="${ETCD_IMAGE:-$DEFAULT_IMAGE}"

# The compose subcommand: the first word that is neither an option nor an option's value.
command=
at=0
skip=
for arg in "$@"; do
  at=$((at + 1))
  if [ -n "$skip" ]; then skip= && continue; fi
  case "$arg" in
    -f | --file | -p | --project-name | --profile | --env-file | --project-directory | --ansi | --log-level | -c | --context | -H | --host) skip=1 ;;
    -*) ;;
    *) command="$arg" && break ;;
  esac
done

# `exec` allocates a terminal by default, and docker-compose v1 fails without one ("the input
# device is not a TTY"): from a script or a pipe, ask for none (-T, which v2 takes too).
if [ "$command" = exec ] && [ ! -t 0 ]; then
  has_t=
  skip=
  for arg in "${@:at+1}"; do # exec's own options, up to the service
    if [ -n "$skip" ]; then skip= && continue; fi
    case "$arg" in
      -T | --no-TTY | --no-tty) has_t=1 ;;
      -e | --env | -u | --user | -w | --workdir | --index) skip=1 ;;
      -*) ;;
      *) break ;;
    esac
  done
  [ -n "$has_t" ] || set -- "${@:1:at}" -T "${@:at+1}"
fi

# Commands on what exists act on every service, whatever its profile, as docker-compose v1 does
# (v2 leaves services of profiles not given out): `stop` stops the sidecars and etcd-3 too;
# `start` and `restart` bring the sidecars back through sync_sidecars.
case "$command" in
  ps | logs | top | stop | kill | pause | unpause | rm | down)
    set -- --profile sidecar --profile scale "$@"
    ;;
esac

# The backup service's host directory, made by the caller (Docker would make it root's).
case "$command" in
  run) mkdir -p "$ETCD_BACKUP_DIR" || die compose.sh "cannot create ETCD_BACKUP_DIR=$ETCD_BACKUP_DIR: give a directory you may write" ;;
esac

status=0
compose "$@" || status=$?
case "$command" in
  up | start | restart) sync_sidecars ;;
esac
exit "$status"
