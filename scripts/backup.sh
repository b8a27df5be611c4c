#!/bin/sh
# Backups for cron, systemd (deploy/systemd/) and the compose `backup` service: a thin wrapper
# over `agora backup`, so every schedule runs the same commands with the same settings.
#
#   scripts/backup.sh full|diff|incr|logical   take that backup (agora backup run KIND)
#   scripts/backup.sh drill|verify|init|list    agora backup drill|verify|init|list
#   scripts/backup.sh due [TIME]                the jobs due in TIME's hour (UTC; default now)
#   scripts/backup.sh schedule                  forever: at each hour, run the jobs due
#
# The schedule (UTC), the same as the systemd timers: full daily at 03:00, diff every other
# hour, logical daily at 02:00, the restore drill on the 1st of the month at 05:00.
# Settings come from the environment (AGORA_BACKUP_*, README); with AGORA_BACKUP_ENV_FILE the
# file is read first (systemd passes its EnvironmentFile itself). Exit codes are agora's:
# 0 done, 1 drill mismatch, 2 an error whose message says what to do.
set -eu

AGORA=${AGORA_BIN:-agora}

usage() {
  sed -n '5,8p' "$0" | sed 's/^# *//' >&2
  exit 64
}

if [ -n "${AGORA_BACKUP_ENV_FILE:-}" ]; then
  # shellcheck disable=SC1090 # the operator's own settings file
  . "$AGORA_BACKUP_ENV_FILE"
fi

# The jobs due at a given hour: $1 day of month (01-31), $2 hour (00-23).
due() {
  if [ "$2" = 03 ]; then echo full; else echo diff; fi
  if [ "$2" = 02 ]; then echo logical; fi
  if [ "$1" = 01 ] && [ "$2" = 05 ]; then echo drill; fi
}

run() {
  case $1 in
    full | diff | incr | logical) "$AGORA" backup run "$1" ;;
    drill | verify | init | list | list-logical) "$AGORA" backup "$1" ;;
    *) usage ;;
  esac
}

case ${1:-} in
  due)
    if [ -n "${2:-}" ]; then
      stamp=$(date -u -d "$2" +'%d %H') || exit 64
    else
      stamp=$(date -u +'%d %H')
    fi
    # shellcheck disable=SC2086 # two words on purpose: day, hour
    due $stamp
    ;;
  schedule)
    while :; do
      # One failed job must not stop the others or the loop: its metric records the failure
      # (agora_backup_last_run_timestamp_seconds without a new last_success), alerts follow.
      # shellcheck disable=SC2046 # two words on purpose: day, hour
      for job in $(due $(date -u +'%d %H')); do
        echo "backup.sh: $(date -u +%FT%TZ) $job" >&2
        run "$job" || echo "backup.sh: $job failed (exit $?)" >&2
      done
      now=$(date -u +%s)
      sleep $((3600 - now % 3600))
    done
    ;;
  "" | -h | --help) usage ;;
  *) run "$1" ;;
esac
