#!/usr/bin/env bash
# The base image pin: one place (Dockerfile.production's `ARG BASE_IMAGE=tag@sha256:…`), read
# by CI for the image build and the image test alike.
#
#   scripts/base-image-pin.sh            print the pinned reference
#   scripts/base-image-pin.sh --check    ... after checking the registry serves that digest
#   scripts/base-image-pin.sh --update   re-pin to the digest the tag points to now (then commit)
#
# Dependabot does not update a FROM that goes through an ARG, so --update is how the pin moves
# (docs/deployment.md). Needs `docker buildx` (GitHub's runners have it) for --check/--update.
set -euo pipefail
dockerfile=${AGORA_DOCKERFILE:-$(cd "$(dirname "$0")/.." && pwd)/Dockerfile.production}
die() { echo "base-image-pin: $*" >&2; exit 1; }

pin=$(sed -n 's/^ARG BASE_IMAGE=//p' "$dockerfile")
[[ $pin =~ ^[a-z0-9./:-]+@sha256:[0-9a-f]{64}$ ]] ||
  die "ARG BASE_IMAGE in $dockerfile is not pinned as tag@sha256:<64 hex> (found '$pin')"
tag=${pin%@*}

digest_of() {
  docker buildx imagetools inspect --format '{{.Manifest.Digest}}' "$1" 2>&1
}

case ${1:-} in
  "") echo "$pin" ;;
  --check)
    out=$(digest_of "$pin") || die "the registry does not serve $pin: $out (re-pin with --update)"
    [ "$out" = "${pin#*@}" ] || die "$pin resolved to '$out'"
    echo "$pin"
    ;;
  --update)
    out=$(digest_of "$tag") || die "cannot resolve $tag: $out"
    [[ $out =~ ^sha256:[0-9a-f]{64}$ ]] || die "unexpected digest for $tag: '$out'"
    sed -i "s|^ARG BASE_IMAGE=.*|ARG BASE_IMAGE=$tag@$out|" "$dockerfile"
    echo "$tag@$out"
    ;;
  *) die "usage: base-image-pin.sh [--check|--update]" ;;
esac
