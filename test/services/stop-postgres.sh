#!/usr/bin/env bash
# Stops the servers started by start-postgres.sh, by the pid in each postmaster.pid.
#   stop-postgres.sh                  replica, then primary (fast shutdown: SIGINT)
#   stop-postgres.sh --replica        the replica only
#   stop-postgres.sh --immediate      immediate shutdown (SIGQUIT): connections drop as in a crash
# Data directories are kept, so the next start-postgres.sh is quick; --wipe removes them too.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

only_replica=0 sig=INT wipe=0
for arg in "$@"; do
  case $arg in
    --replica) only_replica=1 ;;
    --immediate) sig=QUIT ;;
    --wipe) wipe=1 ;;
    *) die "unknown argument $arg (expected --replica, --immediate, --wipe)" ;;
  esac
done

PG_DIR=$WW_SERVICES_DIR/pg
for dir in "$PG_DIR/replica" "$PG_DIR/primary"; do
  if pid=$(pg_pid "$dir"); then
    stop_pid "$pid" "$sig"
    say "stopped $(basename "$dir") (pid $pid, SIG$sig)"
  fi
  [ "$only_replica" = 1 ] && break
done
if [ "$wipe" = 1 ] && [ "$only_replica" = 0 ]; then
  rm -rf "$PG_DIR" "$WW_SERVICES_DIR/postgres.env"
fi
exit 0
