#!/usr/bin/env bash
# Stops the redis-server started by start-redis.sh, by the pid in its pid file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR=$WW_SERVICES_DIR/redis
pid=$(cat "$DIR/redis.pid" 2>/dev/null || true)
if pid_alive "$pid"; then
  stop_pid "$pid" TERM
  say "stopped redis (pid $pid)"
fi
rm -f "$DIR/redis.pid"
exit 0
