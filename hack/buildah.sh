#!/usr/bin/env bash
# buildah on Agentpool's image storage (see hack/lib.sh): `hack/buildah.sh images`,
# `hack/buildah.sh from localhost/agentpool/agent:KEY`, ...
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
write_storage_conf
exec buildah "$@"
