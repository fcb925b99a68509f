#!/usr/bin/env bash
# Starts redis-server on a free loopback port for the cache tests (installs it from apt when missing and
# we are root). Idempotent: a running server is reused. Prints the environment to use (and writes it to
# $WARM_WEB_SERVICES_DIR/redis.env, default /tmp/warm-web-services): CACHE_URL plus WW_REDIS_* facts.
# WW_REDIS_STARTED=1 means this call started it, so the caller owns stopping it (stop-redis.sh).
# Besides the open default user there is a password user (app / warm-test-password), as ElastiCache has.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR=$WW_SERVICES_DIR/redis
ENV_FILE=$WW_SERVICES_DIR/redis.env
PID_FILE=$DIR/redis.pid
APP_USER=app
APP_PASSWORD=warm-test-password

answers() { # port: the default user and the app user both get PONG
  [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ] \
    && [ "$(redis-cli -h 127.0.0.1 -p "$1" --no-auth-warning --user "$APP_USER" --pass "$APP_PASSWORD" ping 2>/dev/null)" = PONG ]
}

if ! command -v redis-server >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "redis-server is not installed (apt-get install redis-server)"
  say "installing redis-server from apt"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; } >"${TMPDIR:-/tmp}/warm-web-redis-apt.log" 2>&1 \
    || { tail -n 20 "${TMPDIR:-/tmp}/warm-web-redis-apt.log" >&2; die "apt-get install redis-server failed"; }
fi
command -v redis-cli >/dev/null 2>&1 || die "redis-cli is missing (apt-get install redis-tools)"

mkdir -p "$DIR"
chmod 755 "$WW_SERVICES_DIR"
exec 9>"$WW_SERVICES_DIR/redis.lock"
flock -w 60 9 || die "another start-redis.sh holds $WW_SERVICES_DIR/redis.lock"

STARTED=0
pid=$(cat "$PID_FILE" 2>/dev/null || true)
port=$(cat "$DIR/port" 2>/dev/null || true)
if ! pid_alive "$pid" || [ -z "$port" ] || ! answers "$port"; then
  pid_alive "$pid" && stop_pid "$pid" TERM
  port=$(free_port)
  rm -f "$PID_FILE"
  redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --pidfile "$PID_FILE" --dir "$DIR" \
    --logfile "$DIR/redis.log" --save '' --appendonly no \
    --user "$APP_USER" on ">$APP_PASSWORD" '~*' '&*' '+@all' >/dev/null 9>&- \
    || die "redis-server did not start (log: $DIR/redis.log)"
  for _ in $(seq 1 100); do
    answers "$port" && break
    sleep 0.05
  done
  answers "$port" || { tail -n 20 "$DIR/redis.log" >&2; die "redis-server is not answering on port $port"; }
  echo "$port" >"$DIR/port"
  STARTED=1
fi

cat >"$ENV_FILE.tmp" <<EOT
CACHE_URL=redis://127.0.0.1:$port/0
WW_REDIS_PORT=$port
WW_REDIS_APP_USER=$APP_USER
WW_REDIS_APP_PASSWORD=$APP_PASSWORD
EOT
mv "$ENV_FILE.tmp" "$ENV_FILE"
cat "$ENV_FILE"
echo "WW_REDIS_STARTED=$STARTED"
