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

# The images are built and run with buildah, chroot isolation (crun fails on setrlimit in
# these sandboxes) and its own storage under the cache, vfs by default (works wherever
# buildah does, rootless and nested too; AGENTPOOL_STORAGE_DRIVER=overlay is faster where
# the kernel allows it). Its own storage keeps it apart from any system podman/buildah.
# Use hack/buildah.sh to see the same images: `hack/buildah.sh images`.
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
export CONTAINERS_STORAGE_CONF="$AGENTPOOL_CACHE/containers/storage.conf"
write_storage_conf() {
  local conf
  conf="$(printf '[storage]\ndriver = "%s"\ngraphroot = "%s"\nrunroot = "%s"\n' \
    "${AGENTPOOL_STORAGE_DRIVER:-vfs}" "$AGENTPOOL_CACHE/containers/storage" \
    "${XDG_RUNTIME_DIR:-/tmp}/agentpool-containers-$(id -u)")"
  if [[ "$(cat "$CONTAINERS_STORAGE_CONF" 2>/dev/null)" != "$conf" ]]; then
    mkdir -p "$(dirname "$CONTAINERS_STORAGE_CONF")"
    echo "$conf" >"$CONTAINERS_STORAGE_CONF"
  fi
}
