#!/usr/bin/env bash
# Makes sure a redis-server binary is available (Debian's package when missing) and
# prints its path. Tests start their own server from it on a free loopback port.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if path="$(command -v redis-server)"; then
  echo "$path"
  exit 0
fi
command -v apt-get >/dev/null || die "redis-server is missing and apt-get is not available; install redis-server (>= 6) and retry"
log="$AGENTPOOL_CACHE/logs/apt-redis.log"
mkdir -p "$(dirname "$log")"
echo ">> installing redis-server from Debian's packages; log: $log" >&2
SUDO=""
[[ "$(id -u)" == 0 ]] || SUDO="sudo"
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  die "installing redis-server failed; full log: $log. Retry with: make redis"
fi
# Debian's package may start a system service; the tests never use it.
command -v redis-server
