# shellcheck shell=bash
# Monitoring helpers (issue #17): installs Prometheus and postgres_exporter from Debian and
# starts throw-away PostgreSQL servers, exporters and a Prometheus on one loopback address.
# Sourced after common.sh (ensure_apt, say, die, ROOT). Every process started here is
# remembered by its PID and stopped by mon_stop_all, which the caller runs from an EXIT trap.

MON_ASSETS="$ROOT/helm/citus-cluster/files/monitoring"
MON_PG_BIN=/usr/lib/postgresql/15/bin
MON_PACKAGES=(postgresql-15 postgresql-client-15 prometheus prometheus-postgres-exporter curl)
MON_PIDS=()

# Installs what the monitoring suite needs (idempotent, through common.sh's ensure_apt).
# Runs in a subshell: a failed install returns non-zero instead of ending the caller, which
# then skips.
mon_ensure_packages() {
  (ensure_apt "${MON_PACKAGES[@]}")
}

# Prints a random 127.a.b.c address no socket is listening on (never 127.0.x.x: the local
# cluster lives in 127.0.10.x).
mon_pick_address() {
  local addr i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    addr="127.$((RANDOM % 200 + 30)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))"
    ss -Hltn 2>/dev/null | awk '{print $4}' | grep -q "^$addr:" || { echo "$addr"; return 0; }
  done
  return 1
}

# The command prefix that runs a program as the postgres user when we are root (PostgreSQL
# refuses root), else as ourselves. setpriv exec's the program (it does not fork), so $! of
# "${MON_AS_POSTGRES[@]}" prog ... & is the program's own PID (a shell function run in the
# background would be a subshell whose PID is not the program's).
if [ "$(id -u)" = 0 ]; then
  MON_AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --init-groups --reset-env --)
else
  MON_AS_POSTGRES=()
fi

mon_track() { MON_PIDS+=("$1"); }

# Stops every process this shell started through these helpers, newest first, by PID:
# SIGTERM (PostgreSQL: a smart shutdown would wait for clients, so SIGINT, a fast one), then
# SIGKILL after 10 s.
mon_stop_all() {
  local i pid deadline
  for ((i = ${#MON_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${MON_PIDS[i]}
    kill -0 "$pid" 2>/dev/null || continue
    if [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = postgres ]; then kill -INT "$pid"; else kill -TERM "$pid"; fi
    deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  MON_PIDS=()
}

# mon_pg_init DIR [citus]: a new data directory; with "citus", citus is preloaded. The
# socket goes to sockets/ beside it, not into it (pg_basebackup would warn about it).
mon_pg_init() {
  local dir=$1 with=${2:-} sockets
  sockets="$(dirname "$dir")/sockets"
  mkdir -p "$dir" "$sockets"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir" "$sockets"
  chmod 0700 "$dir"
  "${MON_AS_POSTGRES[@]}" "$MON_PG_BIN/initdb" -D "$dir" -U postgres -A trust --no-sync >/dev/null || return 1
  {
    echo "wal_level = replica"
    echo "max_wal_senders = 5"
    echo "fsync = off"
    echo "shared_buffers = 32MB"
    echo "unix_socket_directories = '$sockets'"
    echo "log_min_messages = warning"
    [ "$with" = citus ] && echo "shared_preload_libraries = 'citus'"
  } >>"$dir/postgresql.conf"
  # loopback only, and trust: throw-away servers on an address nothing else uses
  printf 'local all all trust\nhost all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n' >"$dir/pg_hba.conf"
}

# mon_pg_standby PRIMARY_HOST PRIMARY_PORT DIR: a hot standby of that server (streaming).
mon_pg_standby() {
  local host=$1 port=$2 dir=$3
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  chmod 0700 "$dir"
  "${MON_AS_POSTGRES[@]}" "$MON_PG_BIN/pg_basebackup" -h "$host" -p "$port" -U postgres -D "$dir" -R -X stream -c fast >/dev/null || return 1
}

# mon_pg_start DIR ADDR PORT LOG: starts postgres in the background, waits until it accepts
# connections (30 s).
mon_pg_start() {
  local dir=$1 addr=$2 port=$3 log=$4 pid i
  "${MON_AS_POSTGRES[@]}" "$MON_PG_BIN/postgres" -D "$dir" -c listen_addresses="$addr" -c port="$port" >"$log" 2>&1 &
  pid=$!
  mon_track "$pid"
  for i in $(seq 300); do
    if "$MON_PG_BIN/pg_isready" -q -h "$addr" -p "$port"; then
      [ "$(ps -o comm= -p "$pid")" = postgres ] || { say "PID $pid is not the postmaster"; return 1; }
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { say "postgres ($dir) ended: $(tail -5 "$log")"; return 1; }
    sleep 0.1
  done
  say "postgres ($dir) not ready after 30 s"; return 1
}

# mon_http_wait URL [SECONDS]: waits until URL answers 200.
mon_http_wait() {
  local url=$1 secs=${2:-30} i
  for i in $(seq $((secs * 10))); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  say "$url did not answer within $secs s"; return 1
}

# mon_exporter_start DSN ADDR PORT LOG: postgres_exporter with the project's queries file
# (the chart's asset), as the pods will run it. Default metrics stay on.
mon_exporter_start() {
  local dsn=$1 addr=$2 port=$3 log=$4 pid
  DATA_SOURCE_NAME="$dsn" prometheus-postgres-exporter \
    --web.listen-address="$addr:$port" \
    --extend.query-path="$MON_ASSETS/queries.yaml" \
    --log.level=info >"$log" 2>&1 &
  pid=$!
  mon_track "$pid"
  mon_http_wait "http://$addr:$port/metrics" 30
}

# mon_prometheus_start CONFIG DATA_DIR ADDR PORT LOG: Prometheus with that configuration.
mon_prometheus_start() {
  local config=$1 data=$2 addr=$3 port=$4 log=$5 pid
  mkdir -p "$data"
  prometheus --config.file="$config" --storage.tsdb.path="$data" \
    --web.listen-address="$addr:$port" --storage.tsdb.retention.time=1h \
    --web.enable-lifecycle >"$log" 2>&1 &
  pid=$!
  mon_track "$pid"
  mon_http_wait "http://$addr:$port/-/ready" 60
}
