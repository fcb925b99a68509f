#!/usr/bin/env bash
# Starts PostgreSQL 15 on loopback for the database tests: a primary and a streaming hot-standby replica
# (pg_basebackup -R -X stream -C -S), each on its own free port, unix sockets in their data directories.
# Run as root, the servers run as the postgres user.
#
# Idempotent and fast: a running server is reused, a stopped one is restarted from its data directory
# (initdb and the base backup happen only the first time, or when a remembered port is now taken).
# Prints the environment to use (and writes it to $WARM_WEB_SERVICES_DIR/postgres.env, default
# /tmp/warm-web-services): the warm-web env contract (DB_*) plus WW_PG_* facts. WW_PG_STARTED=1 means this
# call started the primary, so the caller owns stopping it (test/services/stop-postgres.sh).
#
# Roles: postgres (superuser, unix socket, trust) and warm / warm-test-password (TCP, scram-sha-256),
# owner of database warm. TLS is on (self-signed) when openssl is available, for sslmode=require tests.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_DIR=$WW_SERVICES_DIR/pg
PRIMARY=$PG_DIR/primary
REPLICA=$PG_DIR/replica
ENV_FILE=$WW_SERVICES_DIR/postgres.env
SLOT=ww_replica
APP_USER=warm
APP_PASSWORD=warm-test-password
APP_DB=warm

[ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 is not installed ($PGBIN/initdb missing; apt-get install postgresql-15)"
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user to run the servers as"
fi

mkdir -p "$WW_SERVICES_DIR"
chmod 755 "$WW_SERVICES_DIR"
exec 9>"$WW_SERVICES_DIR/postgres.lock"
flock -w 120 9 || die "another start-postgres.sh holds $WW_SERVICES_DIR/postgres.lock"

if [ ! -d "$PG_DIR" ]; then
  mkdir -p "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
fi

# Remembered ports (from the last start), if any.
conf_port() { sed -n "s/^port = \([0-9]*\).*/\1/p" "$1/postgresql.conf" 2>/dev/null | tail -n1; }

psql_primary() {
  as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PRIMARY" -p "$(conf_port "$PRIMARY")" -U postgres -d postgres "$@"
}

start_server() { # data dir, log name
  as_pg "$PGBIN/pg_ctl" -D "$1" -l "$PG_DIR/$2.log" -w -t 60 start >/dev/null 9>&- \
    || { tail -n 20 "$PG_DIR/$2.log" >&2; die "could not start the $2 (log: $PG_DIR/$2.log)"; }
}

create_primary() {
  local port
  port=$(free_port)
  say "initdb primary on port $port"
  rm -rf "$PRIMARY" "$REPLICA"
  as_pg "$PGBIN/initdb" -D "$PRIMARY" -U postgres -E UTF8 --no-locale -N \
    --auth-local=trust --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
  local ssl=off
  if command -v openssl >/dev/null 2>&1; then
    (cd "$PRIMARY" && as_pg openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -subj /CN=localhost -keyout server.key -out server.crt >/dev/null 2>&1 && as_pg chmod 600 server.key) && ssl=on
  fi
  as_pg tee -a "$PRIMARY/postgresql.conf" >/dev/null <<EOF

# warm-web test settings
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PRIMARY'
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
hot_standby = on
hot_standby_feedback = on
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 60
ssl = $ssl
port = $port
EOF
  start_server "$PRIMARY" primary
  psql_primary <<EOF
CREATE ROLE $APP_USER LOGIN PASSWORD '$APP_PASSWORD';
CREATE DATABASE $APP_DB OWNER $APP_USER;
EOF
  STARTED=1
}

create_replica() {
  local port
  port=$(free_port)
  say "base backup for the replica on port $port"
  rm -rf "$REPLICA"
  psql_primary -c "SELECT pg_drop_replication_slot('$SLOT') FROM pg_replication_slots WHERE slot_name = '$SLOT'" >/dev/null
  as_pg "$PGBIN/pg_basebackup" -D "$REPLICA" -h "$PRIMARY" -p "$(conf_port "$PRIMARY")" -U postgres \
    -R -X stream -C -S "$SLOT" -c fast --no-sync >"$PG_DIR/basebackup.log" 2>&1 \
    || { cat "$PG_DIR/basebackup.log" >&2; die "pg_basebackup failed"; }
  as_pg tee -a "$REPLICA/postgresql.conf" >/dev/null <<EOF

# warm-web test replica
unix_socket_directories = '$REPLICA'
port = $port
EOF
  start_server "$REPLICA" replica
}

STARTED=0
if ! pg_pid "$PRIMARY" >/dev/null; then
  if [ ! -f "$PRIMARY/PG_VERSION" ]; then
    create_primary
  elif port_in_use "$(conf_port "$PRIMARY")"; then
    say "the primary's port $(conf_port "$PRIMARY") is taken by something else: starting afresh"
    create_primary
  else
    start_server "$PRIMARY" primary
    STARTED=1
  fi
fi

if ! pg_pid "$REPLICA" >/dev/null; then
  if [ ! -f "$REPLICA/PG_VERSION" ] || [ ! -f "$REPLICA/standby.signal" ]; then
    create_replica
  elif port_in_use "$(conf_port "$REPLICA")"; then
    say "the replica's port $(conf_port "$REPLICA") is taken by something else: new base backup"
    create_replica
  else
    start_server "$REPLICA" replica
  fi
fi

PRIMARY_PORT=$(conf_port "$PRIMARY")
REPLICA_PORT=$(conf_port "$REPLICA")
# The replica must be streaming (not just accepting connections) before tests rely on it.
for _ in $(seq 1 100); do
  state=$(psql_primary -At -c "SELECT state FROM pg_stat_replication WHERE application_name <> '' LIMIT 1" 2>/dev/null || true)
  [ "$state" = streaming ] && break
  sleep 0.1
done
[ "${state:-}" = streaming ] || die "the replica is not streaming from the primary (state '${state:-none}'; logs in $PG_DIR)"

cat >"$ENV_FILE.tmp" <<EOF
DB_ENGINE=postgresql
DB_WRITER_HOST=127.0.0.1
DB_PORT=$PRIMARY_PORT
DB_READER_HOST=127.0.0.1:$REPLICA_PORT
DB_NAME=$APP_DB
DB_USER=$APP_USER
DB_PASSWORD=$APP_PASSWORD
WW_PG_PRIMARY_PORT=$PRIMARY_PORT
WW_PG_REPLICA_PORT=$REPLICA_PORT
WW_PG_PRIMARY_DIR=$PRIMARY
WW_PG_REPLICA_DIR=$REPLICA
WW_PG_SUPERUSER=postgres
WW_PG_BIN=$PGBIN
EOF
mv "$ENV_FILE.tmp" "$ENV_FILE"
cat "$ENV_FILE"
echo "WW_PG_STARTED=$STARTED"
