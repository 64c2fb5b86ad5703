#!/usr/bin/env bash
# Remove everything docker/up.sh (and a scale-up or the sidecars) created: containers, the
# network, the data volumes, and the settings up.sh remembered. The image stays
# (docker rmi etcd-bootstrap:latest removes it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=docker/lib.sh
. "$here/lib.sh"
"$here/compose.sh" --profile scale --profile sidecar down --volumes --remove-orphans --timeout 10
forget
