# Shared by the test/services scripts (sourced, not run). Everything lives under one state directory
# outside the repository; servers listen on 127.0.0.1 only.
WW_SERVICES_DIR=${WARM_WEB_SERVICES_DIR:-/tmp/warm-web-services}
PGBIN=${WARM_WEB_PGBIN:-/usr/lib/postgresql/15/bin}

say() { printf 'warm-web services: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# A TCP port on 127.0.0.1 that nothing listens on. Random in 20000-59999 so that parallel runs rarely
# pick the same one; each candidate is probed with a connect (refused = free).
free_port() {
  local port i
  for i in $(seq 1 200); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    if ! port_in_use "$port"; then echo "$port"; return 0; fi
  done
  die "no free port found on 127.0.0.1"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Runs a command as the postgres user when we are root (the server refuses to run as root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Alive and not a zombie (PID 1 here may reap exited daemons only after a while).
pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}

# The postmaster pid of a data directory, when that postmaster is alive.
pg_pid() {
  local pid
  [ -f "$1/postmaster.pid" ] || return 1
  pid=$(head -n1 "$1/postmaster.pid")
  pid_alive "$pid" && echo "$pid"
}

# Sends a signal to a pid and waits (up to 30 s) until it is gone.
stop_pid() {
  local pid=$1 sig=$2 i
  pid_alive "$pid" || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for i in $(seq 1 300); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
  say "pid $pid did not exit after SIG$sig; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}
