#!/usr/bin/env bash
# Builds the manifest linters (today: kube-score) from the Go module proxy, pinned by the
# wrapper modules in hack/linters/, and prints the directory that holds them. Builds only
# what is missing.
#
# Why not in hack/build-binaries.sh: the control plane's cache key hashes that script and
# every hack/tools/*/go.mod, so adding a linter there would make every checkout rebuild
# kube-apiserver and friends (about 15 minutes on 2 cores). The linters get their own key.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v go >/dev/null || die "go is not installed; install Go >= 1.26 and retry"

linters_key() {
  {
    go env GOVERSION
    cat "$HACK_DIR"/linters/*/go.mod "$HACK_DIR"/linters/*/go.sum "$HACK_DIR/build-linters.sh"
  } | sha256sum | cut -c1-16
}

BIN="$AGENTPOOL_CACHE/bin/linters-$(linters_key)"
LOG_DIR="$AGENTPOOL_CACHE/logs"
mkdir -p "$BIN" "$LOG_DIR"

# build NAME MODULE_DIR PACKAGE
build() {
  local name="$1" dir="$2" pkg="$3"
  if [[ -x "$BIN/$name" ]]; then
    return 0
  fi
  local log="$LOG_DIR/build-$name.log" start=$SECONDS
  echo ">> building $name ($pkg); log: $log" >&2
  if ! (cd "$HACK_DIR/linters/$dir" &&
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
      -o "$BIN/$name.tmp" "$pkg") >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "building $name failed; full log: $log. Retry with: hack/build-linters.sh"
  fi
  mv "$BIN/$name.tmp" "$BIN/$name"
  echo ">> built $name in $((SECONDS - start))s" >&2
}

build kube-score kube-score github.com/zegl/kube-score/cmd/kube-score
echo "$BIN"
