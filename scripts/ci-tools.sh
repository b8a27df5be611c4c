#!/usr/bin/env bash
# Debian/Ubuntu packages the image, compose and workflow tests use: podman, buildah, runc and
# mmdebstrap (build and run the image without a Docker engine), docker-compose (compose file
# check), shellcheck (scripts, and actionlint's run: checks). Idempotent; needs root or sudo.
set -euo pipefail
declare -A command_of=(
  [podman]=podman [buildah]=buildah [runc]=runc [mmdebstrap]=mmdebstrap
  [docker-compose]=docker-compose [shellcheck]=shellcheck
)
missing=()
for package in "${!command_of[@]}"; do
  command -v "${command_of[$package]}" >/dev/null || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
command -v apt-get >/dev/null || {
  echo "ci-tools: install ${missing[*]} (no apt-get on this machine)" >&2
  exit 1
}
install() {
  $sudo apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}"
}
install >/dev/null 2>&1 || { $sudo apt-get update -qq -o DPkg::Lock::Timeout=600 && install; } || {
  echo "ci-tools: could not install ${missing[*]}: apt-get install ${missing[*]}" >&2
  exit 1
}
