#!/usr/bin/env bash
# Private Redis and PostgreSQL instances for the test suite.
#
#   scripts/services.sh start   install (apt-get, if missing) and start both, print env
#   scripts/services.sh stop    stop both private instances
#   scripts/services.sh env     print `export QBO_TEST_...` lines: eval "$(scripts/services.sh env)"
#
# Redis:      127.0.0.1:${REDIS_PORT_TEST:-6390}, no persistence, files in .run/redis/
# PostgreSQL: 127.0.0.1:${PG_PORT_TEST:-5439}, trust auth, user postgres, db qbo_actions_test,
#             cluster in .run/pg/data (socket + log in .run/pg/). fsync etc. are OFF:
#             test data only. Postgres refuses to run as root, so when run as root the
#             server runs as the `postgres` system user (created if missing). If that user
#             cannot reach .run/pg (repo path not traversable, or the socket path would be
#             too long), the cluster lives in /tmp/qbo-actions-pg-<hash of repo path>/.
#
# Anything already answering on those ports is reused as-is. `start` is idempotent
# and fast when both already answer.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
RUN=$ROOT/.run

REDIS_PORT=${REDIS_PORT_TEST:-6390}
PG_PORT=${PG_PORT_TEST:-5439}
PG_DB=qbo_actions_test
PG_USER=postgres
WAIT_SECS=30

REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
PG_URL="postgresql+psycopg://${PG_USER}@127.0.0.1:${PG_PORT}/${PG_DB}"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

print_env() {
    echo "export QBO_TEST_REDIS_URL=${REDIS_URL}"
    echo "export QBO_TEST_POSTGRES_URL=${PG_URL}"
}

is_root() { [ "$(id -u)" -eq 0 ]; }

as_root() {
    if is_root; then "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@"
    else die "need root to run: $* (install the package manually)"; fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not available; install manually: $*"
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $* (one-time)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Wait until "$@" succeeds, at most WAIT_SECS seconds.
wait_for() {
    local what=$1; shift
    local deadline=$((SECONDS + WAIT_SECS))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then return 1; fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------- Redis

REDIS_DIR=$RUN/redis
REDIS_PID=$REDIS_DIR/redis.pid
REDIS_LOG=$REDIS_DIR/redis.log

redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

redis_start() {
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        apt_install redis-server
    fi
    if redis_ping; then
        log "redis already answering on 127.0.0.1:$REDIS_PORT"
        return
    fi
    mkdir -p "$REDIS_DIR"
    log "starting redis on 127.0.0.1:$REDIS_PORT (dir $REDIS_DIR)"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes \
        --dir "$REDIS_DIR" --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" \
        --save '' --appendonly no --databases 16 8>&- \
        || die "redis-server failed to start; see $REDIS_LOG"
}

redis_wait() {
    wait_for redis redis_ping && return
    [ -f "$REDIS_LOG" ] && tail -n 20 "$REDIS_LOG" >&2
    die "redis did not answer PING on 127.0.0.1:$REDIS_PORT within ${WAIT_SECS}s (log: $REDIS_LOG)"
}

redis_stop() {
    local pid
    if [ -f "$REDIS_PID" ] && pid=$(cat "$REDIS_PID") && [ -n "$pid" ] \
        && kill -0 "$pid" 2>/dev/null && grep -q redis "/proc/$pid/comm" 2>/dev/null; then
        log "stopping redis (pid $pid)"
        kill -TERM "$pid"
        local deadline=$((SECONDS + WAIT_SECS))
        while kill -0 "$pid" 2>/dev/null; do
            [ "$SECONDS" -ge "$deadline" ] && die "redis (pid $pid) did not stop"
            sleep 0.1
        done
        rm -f "$REDIS_PID"
    else
        log "private redis not running"
    fi
}

# ----------------------------------------------------------- PostgreSQL

PG_BIN=
find_pg_bin() {
    local p d
    if p=$(command -v initdb) && command -v pg_ctl >/dev/null; then
        d=$(dirname "$(readlink -f "$p")")
        if [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then PG_BIN=$d; return 0; fi
    fi
    # Debian keeps the server binaries off PATH; take the newest major version.
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then PG_BIN=$d; return 0; fi
    return 1
}

pg_tool() {
    # Client tools: prefer the server's own version, fall back to PATH.
    if [ -n "$PG_BIN" ] && [ -x "$PG_BIN/$1" ]; then echo "$PG_BIN/$1"; else command -v "$1"; fi
}

pg_ready() {
    local isready
    isready=$(pg_tool pg_isready) || return 1
    "$isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2
}

# Run a command as the user that owns the cluster.
as_pg() {
    if is_root; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

ensure_pg_user() {
    is_root || return 0
    if ! id -u postgres >/dev/null 2>&1; then
        log "creating system user postgres"
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
}

FALLBACK_PG_DIR=/tmp/qbo-actions-pg-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)

# Socket paths are limited to 107 bytes.
sock_path_ok() { [ "${#1}" -lt 96 ]; }

# Prefer .run/pg in the repo; fall back to /tmp when the cluster owner
# cannot reach it or the socket path would be too long.
choose_pg_dir() {
    local dir=$RUN/pg
    if sock_path_ok "$dir/.s.PGSQL.$PG_PORT.lock"; then
        mkdir -p "$dir"
        if is_root; then chown postgres: "$dir"; chmod 0700 "$dir"; fi
        if as_pg test -w "$dir" -a -x "$dir" 2>/dev/null; then
            PG_DIR=$dir
            return
        fi
    fi
    log "postgres user cannot use $dir; using $FALLBACK_PG_DIR"
    PG_DIR=$FALLBACK_PG_DIR
    mkdir -p "$PG_DIR"
    if is_root; then chown postgres: "$PG_DIR"; fi
    chmod 0700 "$PG_DIR"
}

pg_init() {
    local data=$PG_DIR/data
    if [ -f "$data/PG_VERSION" ]; then return; fi
    rm -rf "$data"
    log "initdb $data"
    as_pg "$PG_BIN/initdb" -D "$data" -A trust -U "$PG_USER" -E UTF8 --locale=C --no-sync \
        >"$PG_DIR/initdb.log" 2>&1 \
        || { tail -n 20 "$PG_DIR/initdb.log" >&2; die "initdb failed (log: $PG_DIR/initdb.log)"; }
    echo "include_if_exists = 'qbo_test.conf'" | as_pg tee -a "$data/postgresql.conf" >/dev/null
}

pg_start() {
    if ! find_pg_bin; then
        apt_install postgresql
        find_pg_bin || die "PostgreSQL installed but initdb/pg_ctl not found"
    fi
    if pg_ready; then
        log "postgres already answering on 127.0.0.1:$PG_PORT"
        return
    fi
    ensure_pg_user
    choose_pg_dir
    pg_init
    local data=$PG_DIR/data
    # Settings that may change between runs (ports come from the environment).
    as_pg tee "$data/qbo_test.conf" >/dev/null <<EOF
# Written by scripts/services.sh on every start. TEST DATA ONLY: durability is off.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    # A postmaster.pid left by a crash/container restart whose pid now belongs
    # to another process would block startup.
    if [ -f "$data/postmaster.pid" ]; then
        local pid
        pid=$(head -n 1 "$data/postmaster.pid")
        if ! grep -qx postgres "/proc/$pid/comm" 2>/dev/null; then
            log "removing stale $data/postmaster.pid"
            rm -f "$data/postmaster.pid"
        fi
    fi
    log "starting postgres on 127.0.0.1:$PG_PORT (data $data)"
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$PG_DIR/postgres.log" -w -t "$WAIT_SECS" start >/dev/null 8>&- \
        || { tail -n 20 "$PG_DIR/postgres.log" >&2; die "postgres failed to start (log: $PG_DIR/postgres.log)"; }
}

pg_wait() {
    if ! wait_for postgres pg_ready; then
        local l
        for l in "$RUN/pg/postgres.log" "$FALLBACK_PG_DIR/postgres.log"; do
            [ -f "$l" ] && { echo "--- $l" >&2; tail -n 20 "$l" >&2; }
        done
        die "postgres did not answer on 127.0.0.1:$PG_PORT within ${WAIT_SECS}s"
    fi
    local psql exists
    psql=$(pg_tool psql) || die "psql not found"
    exists=$("$psql" -X -qtA -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres \
        -c "select 1 from pg_database where datname = '$PG_DB'") \
        || die "cannot connect to postgres on 127.0.0.1:$PG_PORT as $PG_USER"
    if [ "$exists" != 1 ]; then
        log "creating database $PG_DB"
        "$psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres \
            -c "create database $PG_DB" || die "could not create database $PG_DB"
    fi
}

pg_stop() {
    local dir stopped=0
    find_pg_bin || { log "postgres not installed"; return 0; }
    for dir in "$RUN/pg" "$FALLBACK_PG_DIR"; do
        if [ -f "$dir/data/postmaster.pid" ]; then
            log "stopping postgres ($dir/data)"
            as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t "$WAIT_SECS" stop >/dev/null \
                || die "could not stop postgres in $dir/data"
            stopped=1
        fi
    done
    [ "$stopped" = 1 ] || log "private postgres not running"
}

# ----------------------------------------------------------------- main

cmd=${1:-}
case "$cmd" in
    start)
        mkdir -p "$RUN"
        # Serialize concurrent starts (parallel test runs). The daemons are
        # started with fd 8 closed so they do not keep holding this lock.
        exec 8>"$RUN/services.lock"
        flock -w 120 8 || die "timed out waiting for another 'services.sh start' (lock $RUN/services.lock)"
        redis_start
        pg_start
        redis_wait
        pg_wait
        log "redis and postgres are up"
        print_env
        ;;
    stop)
        mkdir -p "$RUN"
        exec 8>"$RUN/services.lock"
        flock -w 120 8 || die "timed out waiting for another services.sh (lock $RUN/services.lock)"
        redis_stop
        pg_stop
        ;;
    env)
        print_env
        ;;
    *)
        echo "usage: $0 {start|stop|env}" >&2
        exit 2
        ;;
esac
