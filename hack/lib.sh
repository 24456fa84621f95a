# Shared settings for the hack/ scripts. Source it; do not run it.
# The binary cache is keyed by the pinned versions, so changing a wrapper go.mod builds a
# fresh set beside the old one and nothing ever uses a stale binary.

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HACK_DIR/.." && pwd)"
export KUBE_VERSION="v1.34.4"
# Must match hack/tools/etcd/go.mod; kwokctl picks etcd flags by version.
export ETCD_VERSION="3.5.35"
AGENTPOOL_CACHE="${AGENTPOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentpool}"

die() {
  echo "error: $*" >&2
  exit 1
}

binary_cache_key() {
  # go version + every wrapper module + the build script itself
  {
    go env GOVERSION
    cat "$HACK_DIR"/tools/*/go.mod "$HACK_DIR"/tools/*/go.sum "$HACK_DIR/build-binaries.sh"
  } | sha256sum | cut -c1-16
}

bin_dir() {
  echo "$AGENTPOOL_CACHE/bin/$KUBE_VERSION-$(binary_cache_key)"
}

# The images are built with buildah on vfs storage and chroot isolation: the only combination
# that works in these sandboxes (no overlay mounts, and crun fails on setrlimit).
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
