#!/usr/bin/env bash
# Makes sure buildah and mmdebstrap are available (Debian's packages when missing), the two
# tools that build and run the images on machines without a Docker engine. Prints buildah's path.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || die "${missing[*]} missing and apt-get is not available; install buildah (>= 1.28) and mmdebstrap and retry"
  log="$AGENTPOOL_CACHE/logs/apt-buildah.log"
  mkdir -p "$(dirname "$log")"
  echo ">> installing ${missing[*]} from Debian's packages; log: $log" >&2
  SUDO=""
  [[ "$(id -u)" == 0 ]] || SUDO="sudo"
  # uidmap gives rootless buildah its subordinate ids; fuse-overlayfs is not needed (vfs).
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" uidmap; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "installing ${missing[*]} failed; full log: $log. Retry with: hack/ensure-buildah.sh"
  fi
fi
command -v buildah
