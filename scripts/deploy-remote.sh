#!/usr/bin/env bash
# From a GitHub workflow: run scripts/rolling-deploy.sh on the deploy host over SSH.
#   DEPLOY_HOST (user@host) and DEPLOY_SSH_KEY come from the workflow's environment.
#   scripts/deploy-remote.sh IMAGE | --rollback [DIGEST]
set -euo pipefail
: "${DEPLOY_HOST:?DEPLOY_HOST (user@host) is not set for this environment}"
: "${DEPLOY_SSH_KEY:?DEPLOY_SSH_KEY is not set for this environment}"
key=$(mktemp)
trap 'rm -f "$key"' EXIT
printf '%s\n' "$DEPLOY_SSH_KEY" >"$key"
chmod 600 "$key"
# The arguments travel as one quoted string: no word of them is run by the remote shell.
printf -v args '%q ' "$@"
ssh -i "$key" -o StrictHostKeyChecking=accept-new "$DEPLOY_HOST" \
  "cd /srv/agora && git pull --ff-only && scripts/rolling-deploy.sh $args"
