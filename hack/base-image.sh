#!/usr/bin/env bash
# Builds the base images from Debian's packages (mmdebstrap, no registry needed) and commits
# them to buildah's storage. Prints the two image names, runtime first:
#   localhost/agentpool-base:KEY        python3, tini, ca-certificates; no apt, no pip
#   localhost/agentpool-base-build:KEY  the same plus python3-venv (pip), for builder stages
# KEY hashes the suite, the snapshot, the package lists and this script, so the images are
# rebuilt only when one of those changes. The root filesystems are cached as tarballs under
# $AGENTPOOL_CACHE/images; a lost buildah storage is refilled from them in seconds.
# Pin the packages with DEBIAN_SNAPSHOT=20250520T000000Z (snapshot.debian.org); by default the
# suite is read from deb.debian.org as it is today.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUITE="${DEBIAN_SUITE:-bookworm}"
SNAPSHOT="${DEBIAN_SNAPSHOT:-}"
RUNTIME_PACKAGES="python3,tini,ca-certificates"
BUILD_PACKAGES="$RUNTIME_PACKAGES,python3-venv"

hack_dir="$(dirname "${BASH_SOURCE[0]}")"
"$hack_dir/ensure-buildah.sh" >/dev/null

key="$(printf '%s\n' "$SUITE" "$SNAPSHOT" "$RUNTIME_PACKAGES" "$BUILD_PACKAGES" | cat - "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
cache="$AGENTPOOL_CACHE/images"
log_dir="$AGENTPOOL_CACHE/logs"
mkdir -p "$cache" "$log_dir"

if [[ -n "$SNAPSHOT" ]]; then
  mirrors=("deb http://snapshot.debian.org/archive/debian/$SNAPSHOT $SUITE main"
    "deb http://snapshot.debian.org/archive/debian-security/$SNAPSHOT $SUITE-security main")
else
  mirrors=("deb http://deb.debian.org/debian $SUITE main"
    "deb http://deb.debian.org/debian-security $SUITE-security main")
fi

# rootfs NAME PACKAGES: the cached tarball's path, made by mmdebstrap when missing.
rootfs() {
  local name="$1" packages="$2" tar="$cache/$1-$key.tar" log="$log_dir/mmdebstrap-$1.log"
  # mmdebstrap picks the output format from the name, so the partial file ends in .tar too.
  local partial="$cache/.partial-$1-$key.tar"
  if [[ ! -s "$tar" ]]; then
    echo ">> mmdebstrap $SUITE with $packages; log: $log" >&2
    # essential: dpkg and the Essential set, no apt. The hooks drop what no image needs
    # (docs, man pages, locales, package lists and caches) to keep the final images small.
    # The merged-usr hook sets up /usr like debootstrap does; without it mmdebstrap installs
    # usrmerge, which pulls in the whole of perl (47 MB).
    if ! mmdebstrap --variant=essential --include="$packages" \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
      --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/lib/apt/lists/* "$1"/var/log/* "$1"/tmp/*' \
      --customize-hook='find "$1"/usr/lib/python3* -name __pycache__ -prune -exec rm -rf {} +' \
      "$SUITE" "$partial" "${mirrors[@]}" >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      rm -f "$partial"
      die "mmdebstrap failed; full log: $log. Retry with: hack/base-image.sh"
    fi
    mv "$partial" "$tar"
  fi
  echo "$tar"
}

# image NAME PACKAGES: commits the rootfs as localhost/NAME:KEY unless it is already there.
image() {
  local name="$1" packages="$2" ref="localhost/$1:$key" tar ctr
  if ! buildah inspect --type image "$ref" >/dev/null 2>&1; then
    tar="$(rootfs "$name" "$packages")"
    echo ">> committing $ref" >&2
    ctr="$(buildah from scratch)"
    trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' RETURN
    buildah add --quiet "$ctr" "$tar" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --cmd '["python3"]' \
      --label "org.opencontainers.image.base.name=debian:$SUITE" \
      --label "org.agentpool.base-key=$key" "$ctr"
    buildah commit --quiet --rm "$ctr" "$ref" >/dev/null
    trap - RETURN
  fi
  echo "$ref"
}

image agentpool-base "$RUNTIME_PACKAGES"
image agentpool-base-build "$BUILD_PACKAGES"
