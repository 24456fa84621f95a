#!/usr/bin/env bash
# Builds the local control plane from Go modules (no release binaries can be downloaded
# here): kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok,
# kwokctl and helm. Prints the directory that holds them. Builds only what is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v go >/dev/null || die "go is not installed; install Go >= 1.26 and retry"

BIN="$(bin_dir)"
LOG_DIR="$AGENTPOOL_CACHE/logs"
mkdir -p "$BIN" "$LOG_DIR"

KUBE_MINOR="$(echo "$KUBE_VERSION" | cut -d. -f2)"
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
kube_ldflags() {
  local flags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE"
  done
  echo "$flags"
}

# build NAME MODULE_DIR PACKAGE [LDFLAGS]
build() {
  local name="$1" dir="$2" pkg="$3" ldflags="${4:--s -w}"
  if [[ -x "$BIN/$name" ]]; then
    return 0
  fi
  local log="$LOG_DIR/build-$name.log" start=$SECONDS
  echo ">> building $name ($pkg); log: $log" >&2
  if ! (cd "$HACK_DIR/tools/$dir" &&
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" \
      -o "$BIN/$name.tmp" "$pkg") >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "building $name failed; full log: $log. Retry with: make binaries"
  fi
  mv "$BIN/$name.tmp" "$BIN/$name"
  echo ">> built $name in $((SECONDS - start))s" >&2
}

LDK="$(kube_ldflags)"
build kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver "$LDK"
build kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager "$LDK"
build kube-scheduler kubernetes k8s.io/kubernetes/cmd/kube-scheduler "$LDK"
build kubectl kubernetes k8s.io/kubernetes/cmd/kubectl "$LDK"
build etcd etcd go.etcd.io/etcd/server/v3
build kwok kwok sigs.k8s.io/kwok/cmd/kwok
build kwokctl kwok sigs.k8s.io/kwok/cmd/kwokctl
build helm helm helm.sh/helm/v3/cmd/helm
echo "$BIN"
