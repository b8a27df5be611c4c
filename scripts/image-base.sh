#!/usr/bin/env bash
# A local stand-in for the registry base image (python:3.11-slim-bookworm): Debian bookworm
# minbase with Python 3.11, made with mmdebstrap from this machine's own apt sources, for
# machines where no image registry is reachable. Prints the image name.
#
#   scripts/image-base.sh [IMAGE]      (default localhost/agora-base:bookworm)
#
# The tarball is cached in AGORA_IMAGE_CACHE (default /var/tmp/agora-image-cache) so a fresh
# clone on the same machine does not bootstrap again; without it the image is made from scratch.
set -euo pipefail
image=${1:-localhost/agora-base:bookworm}
cache=${AGORA_IMAGE_CACHE:-/var/tmp/agora-image-cache}
here=$(cd "$(dirname "$0")/.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/deploy/docker/containers.conf}

if podman image exists "$image"; then
  echo "$image"
  exit 0
fi
for tool in mmdebstrap podman; do
  command -v "$tool" >/dev/null || {
    echo "image-base: $tool is missing (apt-get install podman buildah runc mmdebstrap)" >&2
    exit 1
  }
done

tarball=$cache/agora-base-bookworm.tar
if [ ! -s "$tarball" ]; then
  mkdir -p "$cache"
  sources=""
  for candidate in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -s "$candidate" ] && grep -q bookworm "$candidate"; then
      sources=$candidate
      break
    fi
  done
  [ -n "$sources" ] || { echo "image-base: no bookworm entry in the apt sources" >&2; exit 1; }
  # python3-venv: the build stage makes the virtualenv; ca-certificates: pip over TLS.
  # shellcheck disable=SC2016 # "$1" is the hook's own argument (the root), expanded by mmdebstrap
  mmdebstrap --quiet --format=tar --variant=minbase \
    --include=python3-minimal,python3,python3-venv,ca-certificates \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/usr/share/doc/* "$1"/usr/share/man/*' \
    bookworm "$tarball.partial" "$sources" >&2
  mv "$tarball.partial" "$tarball"
fi
podman import --quiet "$tarball" "$image" >/dev/null
echo "$image"
