#!/usr/bin/env bash
# Builds the base images from Debian's packages (mmdebstrap, no registry needed) and commits
# them to buildah's storage. Prints the two image names, runtime first:
#   localhost/agentpool-base:KEY        python3, tini, ca-certificates; no apt, no pip
#   localhost/agentpool-base-build:KEY  the same plus python3-venv (pip) and binutils (strip),
#                                       for builder stages only
# KEY hashes the suite, the snapshot, the image's package list and the mmdebstrap options, so
# an image is rebuilt only when one of those changes. The root filesystems are cached as tarballs under
# $AGENTPOOL_CACHE/images; a lost buildah storage is refilled from them in seconds.
# Pin the packages with DEBIAN_SNAPSHOT=20250520T000000Z (snapshot.debian.org); by default the
# suite is read from deb.debian.org as it is today.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUITE="${DEBIAN_SUITE:-bookworm}"
SNAPSHOT="${DEBIAN_SNAPSHOT:-}"
# libstdc++6: manylinux wheels (numpy, usearch) expect it from the system, as PEP 599 says.
RUNTIME_PACKAGES="python3,tini,ca-certificates,libstdc++6"
# binutils: `strip`, for the debug symbols some wheels ship (numkong: 45 MB -> 4 MB).
BUILD_PACKAGES="$RUNTIME_PACKAGES,python3-venv,binutils"

hack_dir="$(dirname "${BASH_SOURCE[0]}")"
"$hack_dir/ensure-buildah.sh" >/dev/null
write_storage_conf

# essential: dpkg and the Essential set, no apt. The merged-usr hook sets up /usr like
# debootstrap does; without it mmdebstrap installs usrmerge, which pulls in the whole of perl
# (47 MB). The rest drops what no image needs: docs, man pages, locales, glibc's iconv
# modules (9 MB; Python's codecs are its own), lib2to3 and pydoc's topics, package lists and
# caches, and perl (8 MB: Essential, but only package scripts use it, and nothing installs
# packages into these images after mmdebstrap is done). The standard
# library's compiled bytecode stays: on a read-only root Python could not write it, and
# would compile every module it imports on each start.
MMDEBSTRAP_OPTS=(--variant=essential --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*'
  --dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*'
  --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/lib/apt/lists/* "$1"/var/log/* "$1"/tmp/*'
  --customize-hook='rm -rf "$1"/usr/lib/python3.11/lib2to3 "$1"/usr/lib/python3.11/pydoc_data'
  --customize-hook='rm -rf "$1"/usr/bin/perl "$1"/usr/bin/perl5.* "$1"/usr/lib/x86_64-linux-gnu/perl-base "$1"/usr/share/perl5')
# Bump when the committed image's config (below) changes.
IMAGE_FORMAT=1
# key PACKAGES: what one base is made of, hashed.
key() {
  printf '%s\n' "$SUITE" "$SNAPSHOT" "$1" "$IMAGE_FORMAT" "${MMDEBSTRAP_OPTS[@]}" | sha256sum | cut -c1-16
}
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
  local name="$1" packages="$2" key tar log="$log_dir/mmdebstrap-$1.log"
  key="$(key "$packages")"
  tar="$cache/$name-$key.tar"
  # mmdebstrap picks the output format from the name, so the partial file ends in .tar too.
  local partial="$cache/.partial-$1-$key.tar"
  if [[ ! -s "$tar" ]]; then
    echo ">> mmdebstrap $SUITE with $packages; log: $log" >&2
    if ! mmdebstrap "${MMDEBSTRAP_OPTS[@]}" --include="$packages" \
      "$SUITE" "$partial" "${mirrors[@]}" >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      rm -f "$partial"
      die "mmdebstrap failed; full log: $log. Retry with: hack/base-image.sh"
    fi
    mv "$partial" "$tar"
    # An older key's tarball is superseded.
    find "$cache" -maxdepth 1 -name "$name-*.tar" ! -name "$name-$key.tar" -delete
  fi
  echo "$tar"
}

# image NAME PACKAGES: commits the rootfs as localhost/NAME:KEY unless it is already there.
image() {
  local name="$1" packages="$2" key ref tar ctr
  key="$(key "$packages")"
  ref="localhost/$name:$key"
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
