#!/bin/bash
# cluster.sh — a throwaway PostgreSQL cluster under the project (socket only) with baton installed.
#
#   scripts/cluster.sh start [--preload]   init (if needed) and start; prints the conninfo
#   scripts/cluster.sh stop                stop it (fast shutdown)
#   scripts/cluster.sh destroy             stop it and delete its files
#   scripts/cluster.sh env                 print export lines for PGHOST, PGPORT, PGDATABASE, PGUSER
#   scripts/cluster.sh conninfo            print the libpq connection string
#   scripts/cluster.sh dir                 print the cluster's directory (server.log is there)
#
# BATON_CLUSTER_DIR picks the directory (default: .cluster at the project root),
# so tests and people can run several clusters side by side.  As root the
# server runs as the ordinary user "postgres" (PostgreSQL refuses root).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${BATON_CLUSTER_DIR:-$root/.cluster}
PG_BIN=${PG_BIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
port=${BATON_PORT:-5432}
db=${BATON_DB:-baton}
user=postgres

# The server runs as "postgres" when we are root: if it cannot reach a
# directory under the project (say, a checkout in a private 0700 directory),
# keep the cluster in /tmp instead, under a name derived from the wanted path.
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$(dirname "$dir")" 2>/dev/null; then
    dir=/tmp/baton-cluster-$(echo -n "$dir" | md5sum | cut -c1-12)
fi

as_owner() {
    # From /, since the server user may not be allowed into the caller's directory.
    if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

sockdir() {
    # Unix socket paths are limited to ~107 bytes; fall back to a short link in /tmp.
    local s="$dir/sock"
    if [ ${#s} -gt 90 ]; then
        s="/tmp/baton-sock-$(echo -n "$dir" | md5sum | cut -c1-12)"
    fi
    echo "$s"
}

conninfo() { echo "host=$(sockdir) port=$port dbname=$db user=$user"; }

psql_admin() {
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$(sockdir)" -p "$port" -U "$user" "$@"
}

start() {
    local preload=""
    [ "${1:-}" = "--preload" ] && preload=baton
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
    local sock; sock=$(sockdir)
    mkdir -p "$sock"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$sock"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$PG_BIN/initdb" -D "$dir/data" -U "$user" --auth=trust --no-sync \
            -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    as_owner tee "$dir/data/postgresql.auto.conf" >/dev/null <<CONF
listen_addresses = '${BATON_LISTEN:-}'
port = $port
unix_socket_directories = '$sock'
max_connections = 200
shared_buffers = '256MB'
fsync = ${BATON_FSYNC:-off}
synchronous_commit = ${BATON_SYNC_COMMIT:-on}
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] '
shared_preload_libraries = '$preload'
baton.database = '$db'
${BATON_EXTRA_CONF:-}
CONF
    if ! as_owner "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
            || { tail -20 "$dir/server.log" >&2; exit 1; }
    fi
    if ! psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
        psql_admin -d postgres -c "CREATE DATABASE \"$db\""
    fi
    psql_admin -d "$db" -c "CREATE EXTENSION IF NOT EXISTS baton"
    conninfo
}

stop() {
    if [ -f "$dir/data/PG_VERSION" ] && as_owner "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    fi
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) stop ;;
    restart) stop; shift; start "$@" ;;
    destroy) stop; rm -rf "$dir" "$(sockdir)" ;;
    env) echo "export PGHOST=$(sockdir) PGPORT=$port PGDATABASE=$db PGUSER=$user" ;;
    conninfo) conninfo ;;
    dir) echo "$dir" ;;
    *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
