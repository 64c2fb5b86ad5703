#!/usr/bin/env bash
# Remove everything docker/up.sh (and a scale-up or the sidecars) created: containers, the
# network and the data volumes. The image stays (docker rmi etcd-bootstrap:latest removes it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/compose.sh" --profile scale --profile sidecar down --volumes --remove-orphans --timeout 10
