# Shared by docker/up.sh, docker/compose.sh and docker/down.sh (sourced, not run).
#
# - Which compose: `docker compose` (v2, the plugin) when it works, else `docker-compose` (v1 or a
#   standalone v2). ETCD_COMPOSE="docker-compose" (or "docker compose") picks one.
# - The project: COMPOSE_PROJECT_NAME, default etcd-bootstrap.
# - Remembered settings: docker/up.sh writes ETCD_CLIENT_PORT and ETCD_IMAGE to
#   docker/.state/<project>.env; every later call reads them from there, so a member is never
#   re-created because a variable was not repeated.
# - etcd-3 and sidecar-3 (profile `scale`) live in compose.scale.yaml, which is included only when
#   `--profile scale` is asked for or etcd-3 exists (a container or its volume): docker-compose v1
#   creates every volume a file declares, used or not.
# - Backups: ETCD_BACKUP_DIR (default docker/backups) is the host directory the `backup` service
#   writes to, made absolute here; the backup runs as the caller (ETCD_BACKUP_USER), so the files
#   are the caller's. compose.restore.yaml is included only while ETCD_RESTORE_FROM is set.

lib_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="${COMPOSE_PROJECT_NAME:-etcd-bootstrap}"
state_file="$lib_here/.state/$project.env"
DEFAULT_CLIENT_PORT=2379
DEFAULT_IMAGE=etcd-bootstrap:latest
ETCD_BACKUP_DIR="${ETCD_BACKUP_DIR:-$lib_here/backups}"
case "$ETCD_BACKUP_DIR" in /*) ;; *) ETCD_BACKUP_DIR="$PWD/$ETCD_BACKUP_DIR" ;; esac
ETCD_BACKUP_USER="$(id -u):$(id -g)"
export ETCD_BACKUP_DIR ETCD_BACKUP_USER

# die SCRIPT MESSAGE: one line on stderr, exit 1.
die() {
  echo "$1: $2" >&2
  exit 1
}

# Sets the array COMPOSE to the compose command, or dies saying what to install.
pick_compose() {
  local who="$1"
  if [ -n "${ETCD_COMPOSE:-}" ]; then
    read -ra COMPOSE <<<"$ETCD_COMPOSE"
    "${COMPOSE[@]}" version >/dev/null 2>&1 ||
      die "$who" "ETCD_COMPOSE=\"$ETCD_COMPOSE\" does not work (\`$ETCD_COMPOSE version\` fails): set it to \"docker compose\" or \"docker-compose\", or unset it"
  elif docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  elif command -v docker-compose >/dev/null; then
    COMPOSE=(docker-compose)
  else
    die "$who" "neither \`docker compose\` (v2) nor \`docker-compose\` (v1) is installed: install one (Debian: apt-get install docker-compose; Docker's own packages: docker-compose-plugin)"
  fi
}

# The value of KEY in the state file, or nothing.
remembered() {
  [ -f "$state_file" ] || return 0
  sed -n "s/^$1=//p" "$state_file" | tail -n 1
}

# The value of KEY that the existing etcd-0 container was created with (a cluster started before
# its settings were remembered), or nothing.
in_use() {
  local id
  id="$(container_of etcd-0)"
  [ -n "$id" ] || return 0
  case "$1" in
    ETCD_CLIENT_PORT) docker inspect -f '{{range (index .HostConfig.PortBindings "2379/tcp")}}{{.HostPort}}{{end}}' "$id" 2>/dev/null ;;
    ETCD_IMAGE) docker inspect -f '{{.Config.Image}}' "$id" 2>/dev/null ;;
  esac
}

# What the cluster runs with: remembered by up.sh, else what etcd-0 was created with.
kept_setting() {
  local value
  value="$(remembered "$1")"
  [ -n "$value" ] || value="$(in_use "$1")"
  echo "$value"
}

# Write the settings the cluster was started with.
remember() {
  mkdir -p "$(dirname "$state_file")"
  printf 'ETCD_CLIENT_PORT=%s\nETCD_IMAGE=%s\n' "$ETCD_CLIENT_PORT" "$ETCD_IMAGE" >"$state_file.tmp"
  mv "$state_file.tmp" "$state_file"
}

forget() {
  rm -f "$state_file"
  rmdir "$(dirname "$state_file")" 2>/dev/null || true
}

# Containers of the project: lines "ID SERVICE STATE" (one-off `run` containers left out).
project_containers() {
  docker ps -a --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.oneoff=False" \
    --format '{{.ID}} {{.Label "com.docker.compose.service"}} {{.State}}'
}

# ID of the container of SERVICE (the running one if there are several), or nothing.
container_of() {
  project_containers | awk -v s="$1" '$2 == s { id = $1; if ($3 == "running") { print id; found = 1; exit } }
    END { if (!found && id != "") print id }'
}

# True when etcd-3 exists: a container or its volume.
scale_in_use() {
  [ -n "$(container_of etcd-3)" ] && return 0
  docker volume inspect "${project}_etcd-3" >/dev/null 2>&1
}

# compose_files ARGS...: sets FILES, the -f options for a compose call with ARGS.
compose_files() {
  FILES=(-f "$lib_here/compose.yaml")
  local want_scale=
  local arg
  for arg in "$@"; do
    case "$arg" in scale | --profile=scale | etcd-3 | sidecar-3) want_scale=1 ;; esac
  done
  case ",${COMPOSE_PROFILES:-}," in *,scale,*) want_scale=1 ;; esac
  if [ -n "$want_scale" ] || scale_in_use; then
    FILES+=(-f "$lib_here/compose.scale.yaml")
  fi
  if [ -n "${ETCD_RESTORE_FROM:-}" ]; then
    FILES+=(-f "$lib_here/compose.restore.yaml")
  fi
}

compose() {
  compose_files "$@"
  "${COMPOSE[@]}" -p "$project" "${FILES[@]}" "$@"
}

# Seconds since the epoch (with nanoseconds) of a container's last start.
started_at() {
  date -d "$(docker inspect -f '{{.State.StartedAt}}' "$1")" +%s.%N
}

# A sidecar shares its member's network namespace ("pod"). Docker binds it to the member's
# container ID when the sidecar starts: after the member is re-created (new ID) the sidecar cannot
# start ("No such container"), and after the member restarts, a running sidecar is left in the old,
# empty namespace. Once sidecars are in use (any sidecar container exists), for each running member:
# re-create its sidecar when bound to another container or missing, start or restart it when it
# is stopped or started before its member.
sync_sidecars() {
  local lines n member sidecar mode state profile
  lines="$(project_containers)"
  grep -q ' sidecar-[0-9]* ' <<<"$lines" || return 0
  for n in 0 1 2 3; do
    member="$(container_of "etcd-$n")"
    [ -n "$member" ] || continue
    [ "$(docker inspect -f '{{.State.Running}}' "$member")" = true ] || continue
    sidecar="$(container_of "sidecar-$n")"
    if [ -n "$sidecar" ]; then
      mode="$(docker inspect -f '{{.HostConfig.NetworkMode}}' "$sidecar")"
      state="$(docker inspect -f '{{.State.Running}}' "$sidecar")"
    fi
    if [ -z "$sidecar" ] || [ "${mode#container:}" != "$(docker inspect -f '{{.Id}}' "$member")" ]; then
      echo "sidecar-$n: (re)creating it beside the current etcd-$n" >&2
      # sidecar-3 is in the scale profile with etcd-3; the scale file only with it (see above).
      if [ "$n" = 3 ]; then profile=scale; else profile=sidecar; fi
      compose --profile "$profile" up -d --force-recreate --no-deps "sidecar-$n" >&2
    elif [ "$state" != true ]; then
      echo "sidecar-$n: starting it again beside etcd-$n" >&2
      docker start "$sidecar" >/dev/null
    elif awk -v s="$(started_at "$sidecar")" -v m="$(started_at "$member")" 'BEGIN { exit !(s < m) }'; then
      echo "sidecar-$n: restarting it, etcd-$n restarted after it (a new network namespace)" >&2
      docker restart --time 5 "$sidecar" >/dev/null
    fi
  done
}
