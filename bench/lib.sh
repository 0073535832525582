# lib.sh — shared helpers for the benchmark sections: clusters, pgbench, figures, failures, cleanup.
#
# Sourced by bench/run.sh and by every bench/sections/NN_name.sh.  run.sh
# exports BENCH_ROOT (project root), BENCH_WORK (scratch directory, deleted at
# the end), BENCH_OUT (results directory), BENCH_MODE (full|quick|smoke) and
# the size knobs B_*; a section is run as `bash sections/NN_name.sh` with
# SECTION set to its name.

BENCH_ROOT=${BENCH_ROOT:?run me through bench/run.sh}
BENCH_WORK=${BENCH_WORK:?run me through bench/run.sh}
SECTION=${SECTION:-unknown}
FIGURES=$BENCH_WORK/figures.jsonl
SECTIONS=$BENCH_WORK/sections.jsonl
PIDS=$BENCH_WORK/pids.$SECTION

# Prints a progress line on stderr (stdout of a section is its log).
log() { printf '[%s %s] %s\n' "$(date -u +%H:%M:%S)" "$SECTION" "$*" >&2; }

# Runs a JSON-building python snippet: figures and section states are JSON lines.
PYTHON=${PYTHON:-python3}
json_line() {
    "$PYTHON" - "$@" <<'PY'
import json, math, sys
out = {}
for arg in sys.argv[1:]:
    k, _, v = arg.partition("=")
    if k.endswith(":n"):          # numeric field; NaN and infinity are not JSON
        k = k[:-2]
        try:
            v = float(v)
            if not math.isfinite(v):
                v = None
            elif v.is_integer() and abs(v) < 1e15:
                v = int(v)
        except ValueError:
            v = None
    out[k] = v
print(json.dumps(out))
PY
}

# Records one measured figure.  Arguments are key=value; numeric ones as key:n=value.
#   id=drain.w1.b50 name="drain, 1 worker" value:n=1234 unit=tasks/s
#   bound=raw.claim.best (id of another figure) or bound_value:n=... bound_name=...
#   target=">=0.70" target_on=ratio|value, note=...
figure() {
    # A measurement that produced no number is a broken section, not a figure.
    local arg
    for arg in "$@"; do
        case $arg in value:n=|value:n=*nan*|value:n=*inf*) log "figure $1: no value measured ($arg)"; exit 1 ;; esac
    done
    json_line section="$SECTION" "$@" >>"$FIGURES"
    local a; for a in "$@"; do case $a in id=*|value:n=*|unit=*) printf '%s ' "$a" >&2 ;; esac; done; echo >&2
}

# Fails the current section (or a named sub-part) with the reason: everything a section
# measures exists, so a part that cannot be measured is a failure, never a skip.
fail() {
    local what=$1; shift
    json_line section="$SECTION" part="$what" status=failed reason="$*" >>"$SECTIONS"
    log "FAILED $what: $*"
    exit 1
}

# Marks a sub-part as measured.
part_ok() { json_line section="$SECTION" part="$1" status=ok >>"$SECTIONS"; }

# Numbers: floating point arithmetic, e.g. calc '100000 / 3.5'.
calc() { awk "BEGIN { printf \"%.6f\\n\", ($1) }"; }

# Succeeds when the comparison holds, e.g. is_true '3.5 > 2'.
is_true() { awk "BEGIN { exit !($1) }"; }

# --- clusters ------------------------------------------------------------------

# Starts a fresh throwaway cluster for this section (extra postgresql.conf lines as $1)
# and exports PG* so psql and pgbench find it.  With "--preload" as $2, baton is in
# shared_preload_libraries (its scheduler worker serves the database and sends the wake-ups).
# In smoke mode (BENCH_SHARED_CLUSTER set) every section gets a fresh database in one shared
# cluster instead, started by run.sh with every section's extra settings: seconds, not minutes.
cluster_up() {
    export BATON_FSYNC=${BATON_FSYNC:-on}
    export BATON_SYNC_COMMIT=${BATON_SYNC_COMMIT:-on}
    if [ -n "${BENCH_SHARED_CLUSTER:-}" ]; then
        export BATON_CLUSTER_DIR=$BENCH_SHARED_CLUSTER BATON_DB=bench_$SECTION BATON_EXTRA_CONF=$BENCH_SHARED_CONF
        "$BENCH_ROOT/scripts/cluster.sh" start >/dev/null || return 1
    else
        export BATON_CLUSTER_DIR=$BENCH_WORK/clusters/$SECTION
        export BATON_EXTRA_CONF="${1:-}"
        mkdir -p "$BENCH_WORK/clusters"
        echo "$BATON_CLUSTER_DIR" >>"$BENCH_WORK/cluster-dirs"
        "$BENCH_ROOT/scripts/cluster.sh" destroy >/dev/null 2>&1 || true
        "$BENCH_ROOT/scripts/cluster.sh" start ${2:-} >/dev/null || return 1
        if [ "${2:-}" = --preload ]; then
            # The scheduler worker attaches once it is connected; until then wake-ups are NOTIFYs.
            eval "$("$BENCH_ROOT/scripts/cluster.sh" env)"
            wait_for "baton.scheduler_running()" 30 0.1 || { log "the scheduler worker did not start"; return 1; }
        fi
    fi
    eval "$("$BENCH_ROOT/scripts/cluster.sh" env)"
    export PGHOST PGPORT PGDATABASE PGUSER
    BENCH_DSN=$("$BENCH_ROOT/scripts/cluster.sh" conninfo)
    export BENCH_DSN
    # The settings that shape the numbers, for the report.
    q -c "SELECT json_object_agg(name, setting || COALESCE(unit, '')) FROM pg_settings
           WHERE name IN ('fsync','synchronous_commit','full_page_writes','shared_buffers','max_connections',
                          'wal_level','max_wal_size','checkpoint_timeout','autovacuum','track_commit_timestamp',
                          'server_version','work_mem','wal_sync_method')" >"$BENCH_WORK/settings-$SECTION.json"
}

# Stops and deletes this section's cluster.
cluster_down() {
    [ -n "${BATON_CLUSTER_DIR:-}" ] || return 0
    if [ -n "${BENCH_SHARED_CLUSTER:-}" ]; then
        psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$BATON_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    else
        "$BENCH_ROOT/scripts/cluster.sh" destroy >/dev/null 2>&1 || true
    fi
}

# psql, quiet, stop on error, tuples only.  q -c SQL, or q -f FILE.
q() { psql -X -q -v ON_ERROR_STOP=1 -tA "$@"; }

# Runs SQL and prints only the first line of the error on failure (for failure reasons).
try_sql() {
    local out
    if out=$(psql -X -q -v ON_ERROR_STOP=1 -tA -c "$1" 2>&1); then
        printf '%s' "$out"; return 0
    fi
    printf '%s' "$out" | grep -m1 -E 'ERROR|FATAL|error' | sed 's/^psql:[^:]*:[0-9]*: //'
    return 1
}

# Checkpoint and vacuum so a measurement starts from a quiet server.
# Only the user tables: a database-wide VACUUM also walks every catalog, which costs seconds.
settle() {
    local tables
    q -c 'CHECKPOINT' >/dev/null
    tables=$(q -c "SELECT string_agg(format('%I.%I', schemaname, relname), ', ') FROM pg_stat_user_tables")
    [ -n "$tables" ] && q -c "VACUUM ANALYZE $tables" >/dev/null 2>&1
    return 0
}

# --- pgbench -------------------------------------------------------------------

# run_pgbench LABEL ARGS...: runs pgbench (bounded by B_PHASE_TIMEOUT) and sets
# PGB_TPS, PGB_TX (transactions done), PGB_LAT (ms average), PGB_FAILED.
run_pgbench() {
    local label=$1; shift
    local out=$BENCH_WORK/logs/$SECTION-$label.pgbench
    mkdir -p "$BENCH_WORK/logs"
    PGB_TPS=; PGB_TX=; PGB_LAT=; PGB_FAILED=0
    if ! timeout -k 5 "${B_PHASE_TIMEOUT:-300}" pgbench -n "$@" >"$out" 2>&1; then
        log "pgbench $label failed:"; tail -5 "$out" >&2
        return 1
    fi
    PGB_TPS=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$out")
    PGB_TX=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    PGB_LAT=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$out")
    PGB_FAILED=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    PGB_FAILED=${PGB_FAILED:-0}
    if [ -z "$PGB_TPS" ] || [ -z "$PGB_TX" ]; then
        log "pgbench $label: could not parse output"; tail -5 "$out" >&2
        return 1
    fi
}

# --- background processes --------------------------------------------------------

# bg CMD...: starts CMD in the background, records its pid (killed at cleanup); sets BG_PID.
bg() {
    "$@" &
    BG_PID=$!
    echo "$BG_PID" >>"$PIDS"
}

# Stops a background process: TERM, then KILL after $2 seconds (default 5).
bg_stop() {
    local pid=$1 grace=${2:-5} i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; bg_forget "$pid"; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    bg_forget "$pid"
}

# Drops a pid from the section's list once it has ended.
bg_forget() { [ -f "$PIDS" ] && sed -i "/^$1\$/d" "$PIDS"; return 0; }

# Waits until the SQL condition $1 is true, at most $2 seconds (polling every $3 s).
wait_for() {
    local cond=$1 limit=$2 step=${3:-0.2} start=$SECONDS
    while [ $((SECONDS - start)) -lt "$limit" ]; do
        [ "$(q -c "SELECT ($cond)::int" 2>/dev/null)" = 1 ] && return 0
        sleep "$step"
    done
    return 1
}

# --- the worker daemon --------------------------------------------------------------

# BENCH_WORKER_BIN replaces the worker (to try the harness with a stand-in).
WORKER_BIN=${BENCH_WORKER_BIN:-$BENCH_ROOT/worker/baton-worker}

# Builds the worker once per run; prints the reason and fails when there is none.
worker_built() {
    local cache=$BENCH_WORK/worker-build
    if [ ! -f "$cache" ]; then
        if [ -n "${BENCH_WORKER_BIN:-}" ]; then
            if [ -x "$WORKER_BIN" ]; then echo ok; else echo "$WORKER_BIN is not executable"; fi >"$cache"
        elif ! make -s -C "$BENCH_ROOT/worker" >"$BENCH_WORK/worker-build.log" 2>&1; then
            echo "worker does not build (make -C worker failed: $(tail -1 "$BENCH_WORK/worker-build.log"))" >"$cache"
        elif [ ! -x "$WORKER_BIN" ]; then
            echo "worker/baton-worker does not exist yet (make -C worker builds nothing)" >"$cache"
        else
            echo ok >"$cache"
        fi
    fi
    [ "$(cat "$cache")" = ok ] || { cat "$cache"; return 1; }
}

# worker_section QUEUE: the common start of a section that measures the worker: fails the
# section when the worker does not build or does not drain a probe queue, else brings the
# cluster up, creates QUEUE and the section's work directory in $dir.
worker_section() {
    local why
    # No cluster needed to find out that there is no worker to measure.
    why=$(worker_built) || fail "$SECTION" "$why"
    cluster_up || exit 1
    why=$(worker_works) || fail "$SECTION" "$why"
    dir=$BENCH_WORK/$SECTION
    mkdir -p "$dir"
    q -c "SELECT baton.create_queue('$1')" >/dev/null || exit 1
}

# start_worker CONFIG LOGFILE: starts baton-worker on the section's cluster; sets WORKER_PID.
start_worker() {
    bg "$WORKER_BIN" --config "$1" --dsn "$BENCH_DSN" >>"$2" 2>&1
    WORKER_PID=$BG_PID
}

# worker_config FILE CONCURRENCY QUEUE HANDLER [extra lines for the queue section]
worker_config() {
    {
        printf '[worker]\nconcurrency = %s\n' "$2"
        printf '[queue %s]\nhandler = %s\n' "$3" "$4"
        [ -n "${5:-}" ] && printf '%s\n' "$5"
    } >"$1"
}

# Proves the worker drains a noop queue on this cluster (once per run; the
# result is cached).  Prints the reason and fails when it does not.
worker_works() {
    local cache=$BENCH_WORK/worker-probe
    if [ ! -f "$cache" ]; then
        local why
        if ! why=$(worker_built); then
            echo "$why" >"$cache"
        else
            local cfg=$BENCH_WORK/probe.conf wlog=$BENCH_WORK/logs/worker-probe.log
            mkdir -p "$BENCH_WORK/logs"
            q -c "SELECT baton.create_queue('bench_probe', if_not_exists => true)" >/dev/null
            q -c "SELECT count(*) FROM baton.enqueue_many('bench_probe', (SELECT jsonb_agg(i) FROM generate_series(1, 20) i))" >/dev/null
            worker_config "$cfg" 8 bench_probe noop
            start_worker "$cfg" "$wlog"
            if wait_for "NOT EXISTS (SELECT 1 FROM baton._tasks WHERE queue = 'bench_probe' AND state <> 'succeeded')" 15 0.2; then
                echo ok >"$cache"
            else
                echo "baton-worker did not drain 20 noop tasks in 15 s ($(tail -1 "$wlog" 2>/dev/null))" >"$cache"
            fi
            bg_stop "$WORKER_PID" 10
            q -c "DELETE FROM baton._tasks WHERE queue = 'bench_probe'" >/dev/null 2>&1 || true
        fi
    fi
    [ "$(cat "$cache")" = ok ] || { cat "$cache"; return 1; }
}

# Per-section cleanup: background processes and the cluster.  Installed by section_init.
section_cleanup() {
    local pid
    if [ -f "$PIDS" ]; then
        for pid in $(cat "$PIDS"); do kill -TERM "$pid" 2>/dev/null || true; done
    fi
    cluster_down
}

# Every section starts with this: cleanup on exit, even on failure or timeout.
section_init() {
    set -uo pipefail
    trap section_cleanup EXIT
    trap 'exit 143' TERM INT
    mkdir -p "$BENCH_WORK/logs"
}

# Compiles bench/tools/NAME.c against libpq into the scratch directory; prints the binary's path.
build_tool() {
    local bin=$BENCH_WORK/bin/$1
    if [ ! -x "$bin" ]; then
        mkdir -p "$BENCH_WORK/bin"
        gcc -std=c11 -Wall -Wextra -Werror -O2 -I"$(pg_config --includedir)" -I/usr/include/postgresql \
            -o "$bin" "$BENCH_ROOT/bench/tools/$1.c" -L"$(pg_config --libdir)" -lpq >&2 || return 1
    fi
    echo "$bin"
}

# Value of a figure recorded earlier in this run (empty when not measured).
figure_value() {
    "$PYTHON" - "$FIGURES" "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    f = json.loads(line)
    if f.get("id") == sys.argv[2] and f.get("value") is not None:
        print(f["value"])
PY
}

# --- profiles (full run, where a target is missed) ------------------------------------

# Starts a system-wide perf profile named $1 (no-op when perf does not work here).
profile_start() {
    PROFILE_PID=
    command -v perf >/dev/null || return 0
    bg perf record -a -g -F 499 -o "$BENCH_WORK/$1.perf" >"$BENCH_WORK/logs/$1.perf.log" 2>&1
    PROFILE_PID=$BG_PID
    sleep 0.3
}

# Stops the profile and writes the hottest symbols to $BENCH_OUT/profile-$1.txt; sets PROFILE_NOTE.
# Not in a $(...) subshell: only this shell can wait for perf to finish writing its data.
profile_stop() {
    PROFILE_NOTE="perf not available: no profile"
    [ -n "${PROFILE_PID:-}" ] || return 0
    # TERM, not INT: a background job of a script ignores SIGINT; perf writes its data on either.
    kill -TERM "$PROFILE_PID" 2>/dev/null
    wait "$PROFILE_PID" 2>/dev/null
    bg_forget "$PROFILE_PID"
    if ! perf report -i "$BENCH_WORK/$1.perf" --stdio --no-children --sort comm,dso,symbol --percent-limit 1 \
            >"$BENCH_OUT/profile-$1.txt" 2>/dev/null; then
        PROFILE_NOTE="perf record/report not supported here: no profile"; return 0
    fi
    local top
    # Busiest non-idle symbols: "percent command symbol".
    top=$(grep -E '^ +[0-9.]+%' "$BENCH_OUT/profile-$1.txt" | grep -v ' swapper ' | head -6 \
          | awk '{ s = $5; for (i = 6; i <= NF && $i != "-"; i++) s = s " " $i; print $1, $2, s }' | paste -sd ';' -)
    PROFILE_NOTE="profile (profile-$1.txt), top: ${top:-no samples}"
}
