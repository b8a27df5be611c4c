#!/usr/bin/env bash
# Rolling deploy of docker-compose.production.yml, one replica at a time:
#
#   scripts/rolling-deploy.sh IMAGE            e.g. ghcr.io/agora-social/agora@sha256:…
#   scripts/rolling-deploy.sh --rollback [DIGEST]   the image that ran before (or DIGEST)
#
# For each service (auth, posts, realtime) and each of its replicas: start one new container
# from IMAGE, wait until its readiness check is healthy, then stop one old container (SIGTERM:
# it drains within agora's 60 s bound). A new replica that never becomes healthy is removed
# and the deploy stops with the old replicas still serving. The migration job runs first
# (migrations are backwards compatible with the running release: docs/deployment.md).
# Every deploy appends the digest it rolled out to .deploy-history, which --rollback reads.
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE=${COMPOSE:-docker compose -f docker-compose.production.yml}
HISTORY=${AGORA_DEPLOY_HISTORY:-.deploy-history}
READY_TIMEOUT_S=${AGORA_DEPLOY_READY_TIMEOUT_S:-120}
SERVICES=${AGORA_DEPLOY_SERVICES:-auth posts realtime}

die() { echo "rolling-deploy: $*" >&2; exit 1; }

if [ "${1:-}" = "--rollback" ]; then
  image=${2:-}
  if [ -z "$image" ]; then
    [ "$(wc -l <"$HISTORY" 2>/dev/null || echo 0)" -ge 2 ] ||
      die "no previous deploy in $HISTORY: give the digest to roll back to"
    image=$(tail -n 2 "$HISTORY" | head -n 1)
  elif [[ $image == sha256:* ]]; then
    current=$(tail -n 1 "$HISTORY" 2>/dev/null) || die "no deploy in $HISTORY to take the repository from"
    image="${current%@*}@$image"
  fi
  echo "rolling back to $image"
else
  image=${1:?usage: rolling-deploy.sh IMAGE | --rollback [DIGEST]}
fi

health() { docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1"; }

wait_healthy() {
  local container=$1 waited=0
  while [ "$waited" -lt "$READY_TIMEOUT_S" ]; do
    case $(health "$container") in
      healthy) return 0 ;;
      unhealthy) return 1 ;;
    esac
    sleep 2
    waited=$((waited + 2))
  done
  return 1
}

export AGORA_IMAGE=$image
docker pull --quiet "$image" >/dev/null
# Resolve a tag to the digest actually deployed, so a rollback is exact.
digest=$(docker image inspect --format '{{index .RepoDigests 0}}' "$image" 2>/dev/null || echo "$image")

$COMPOSE run --rm migrate || die "migrations failed: nothing was replaced"

for service in $SERVICES; do
  mapfile -t old < <($COMPOSE ps -q "$service")
  [ "${#old[@]}" -gt 0 ] || die "$service has no running replica: use 'docker compose up -d' first"
  for previous in "${old[@]}"; do
    # One more replica of the new image, alongside the old ones...
    $COMPOSE up -d --no-deps --no-recreate --scale "$service=$((${#old[@]} + 1))" "$service"
    new=$($COMPOSE ps -q "$service" | grep -vxF -f <(printf '%s\n' "${old[@]}") | head -n 1)
    if ! wait_healthy "$new"; then
      docker rm -f "$new" >/dev/null
      die "$service: a new replica on $image never became ready; the old replicas still serve"
    fi
    # ...then one old replica drains and goes.
    docker stop --time 65 "$previous" >/dev/null
    docker rm "$previous" >/dev/null
    old=("${old[@]/$previous/}")
    mapfile -t old < <(printf '%s\n' "${old[@]}" | grep -v '^$' || true)
    old+=("$new")
    echo "$service: replaced $previous with $new (ready)"
  done
done
echo "$digest" >>"$HISTORY"
echo "deployed $digest"
