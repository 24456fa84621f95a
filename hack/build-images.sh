#!/usr/bin/env bash
# Builds the images (default: both) from agent_image/Containerfile and operator/Containerfile.
#   hack/build-images.sh [agent] [operator]
# With a running Docker engine: `docker build` on the official slim Python base, tagged
# ghcr.io/agentpool/NAME:VERSION. Otherwise buildah (installed from Debian's packages when
# missing) on the bases hack/base-image.sh makes from Debian's packages, tagged
# localhost/agentpool/NAME:KEY and ghcr.io/agentpool/NAME:VERSION, where KEY hashes what the
# image depends on (its Containerfile, pyproject.toml, its code, the bases): an unchanged
# tree is not rebuilt at all.
# AGENTPOOL_IMAGE_BUILDER=docker|buildah picks the builder (default: docker when it runs).
# Prints one line per image: NAME REF. Set AGENTPOOL_IMAGE_REVISION to label a release build
# with its commit (left out by default so that commits alone do not rebuild).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

names=("$@")
((${#names[@]})) || names=(agent operator)
version="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
revision="${AGENTPOOL_IMAGE_REVISION:-unknown}"
log_dir="$AGENTPOOL_CACHE/logs"
mkdir -p "$log_dir"

containerfile() {
  case "$1" in
    agent) echo agent_image/Containerfile ;;
    operator) echo operator/Containerfile ;;
    *) die "unknown image $1 (agent or operator)" ;;
  esac
}

# An optional CA bundle for pip in the builder (a TLS-intercepting proxy), passed as a secret
# so it never lands in a layer.
ca="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
secret=()
[[ -s "$ca" ]] && secret=(--secret "id=pip-ca,src=$ca")
common_args=(--build-arg "VERSION=$version" --build-arg "REVISION=$revision" "${secret[@]}")

builder="${AGENTPOOL_IMAGE_BUILDER:-auto}"
if [[ "$builder" == auto ]]; then
  builder=buildah
  command -v docker >/dev/null && docker info >/dev/null 2>&1 && builder=docker
fi
if [[ "$builder" == docker ]]; then
  for name in "${names[@]}"; do
    ref="ghcr.io/agentpool/$name:$version"
    start=$SECONDS
    DOCKER_BUILDKIT=1 docker build -q "${common_args[@]}" -f "$(containerfile "$name")" -t "$ref" . >&2
    echo ">> built $ref in $((SECONDS - start))s (docker)" >&2
    echo "$name $ref"
  done
  exit 0
fi

"$HACK_DIR/ensure-buildah.sh" >/dev/null
write_storage_conf
mapfile -t bases < <("$HACK_DIR/base-image.sh")
base="${bases[0]}" build_base="${bases[1]}"

# inputs_key NAME: a hash of what the image's contents depend on. The agent image drops the
# operator's code, so only agent_runtime counts for it; the operator image carries both.
# README.md (the wheel's long description) does not count: a docs change rebuilds nothing.
inputs_key() {
  local code=(agent_image/agent_runtime)
  [[ "$1" == operator ]] && code+=(operator/agentpool_operator)
  {
    printf '%s\n' "$1" "$base" "$build_base" "$version" "$revision"
    cat "$(containerfile "$1")" .containerignore pyproject.toml "${BASH_SOURCE[0]}"
    find "${code[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 |
      sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}

for name in "${names[@]}"; do
  ref="localhost/agentpool/$name:$(inputs_key "$name")"
  if ! buildah inspect --type image "$ref" >/dev/null 2>&1; then
    log="$log_dir/build-image-$name.log"
    echo ">> building $ref with buildah; log: $log" >&2
    start=$SECONDS
    if ! buildah build --layers --format oci "${common_args[@]}" \
      --build-arg "BASE_IMAGE=$base" --build-arg "BUILD_IMAGE=$build_base" \
      -f "$(containerfile "$name")" -t "$ref" -t "ghcr.io/agentpool/$name:$version" . >"$log" 2>&1; then
      tail -n 30 "$log" >&2
      die "building the $name image failed; full log: $log. Retry with: make images"
    fi
    echo ">> built $ref in $((SECONDS - start))s" >&2
    # Older builds of this image are superseded (vfs keeps a full copy of each); the two
    # newest others stay, since another checkout on this machine (a CI clone, a second
    # worktree) may be testing its own. The untagged layer cache stays too (reclaim it
    # with: hack/buildah.sh rmi --prune).
    buildah images --format '{{.CreatedAtRaw}}|{{.Name}}:{{.Tag}}' |
      grep -F "|localhost/agentpool/$name:" | sort -r | cut -d'|' -f2 | grep -vxF "$ref" |
      tail -n +3 | xargs -r buildah rmi >/dev/null 2>&1 || true
  fi
  echo "$name $ref"
done
