#!/bin/bash
# 70_sched_bgworker.t — the scheduler background worker of a preloaded cluster ticks, fires cron, expires
# leases, survives errors, reloads its interval on SIGHUP and comes back after a restart.
#
# Runs its own preloaded throwaway cluster.  Every wait polls with a generous
# deadline; nothing asserts how fast anything happened.
set -uo pipefail

root=${BATON_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export BATON_CLUSTER_DIR="$root/.cluster-sched"
cluster="$root/scripts/cluster.sh"
n=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
q() { psql -X -qtA -v ON_ERROR_STOP=1 "$@"; }
now_ms() { date +%s%3N; }
hammers=()
cleanup() {
    for p in "${hammers[@]}"; do kill "$p" 2>/dev/null; done
    "$cluster" destroy >/dev/null 2>&1
    rm -f "$BATON_CLUSTER_DIR.log"
}
trap cleanup EXIT

# poll SECONDS SQL: true once SQL returns "t", false after the deadline.
poll() {
    local deadline=$(( $(now_ms) + $1 * 1000 ))
    until [ "$(q -c "$2" 2>/dev/null)" = t ]; do
        [ "$(now_ms)" -gt "$deadline" ] && return 1
        sleep 0.1
    done
}
# The worker's status line in pg_stat_activity: "baton scheduler: N ticks, interval M ms, last: ...".
status_sql="SELECT query FROM pg_stat_activity WHERE backend_type = 'baton scheduler' AND datname = current_database()"
ticks() { q -c "$status_sql" | sed -n 's/^baton scheduler: \([0-9]*\) ticks.*/\1/p'; }
worker_pid() { q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'baton scheduler' AND datname = current_database()"; }
# start_preloaded INTERVAL_MS: (re)start the cluster with the library preloaded, serving two
# databases (one named twice: still one worker); sched_other has no baton extension.
start_preloaded() {
    BATON_EXTRA_CONF="baton.tick_interval = $1
baton.database = 'baton, sched_other, baton'" "$cluster" restart --preload >>"$BATON_CLUSTER_DIR.log" 2>&1
}

echo "1..16"
"$cluster" destroy >/dev/null 2>&1
# The database must exist when the worker first starts, so create it before preloading.
{ "$cluster" start && eval "$("$cluster" env)" && createdb sched_other && start_preloaded 60000; } >"$BATON_CLUSTER_DIR.log" 2>&1 || {
    sed 's/^/# /' "$BATON_CLUSTER_DIR.log"; echo "Bail out! cannot start a preloaded cluster"; exit 1; }
eval "$("$cluster" env)"

poll 20 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'baton scheduler' AND datname = 'baton'"
ok $? "one background worker with backend_type 'baton scheduler' serves the database"
poll 20 "SELECT query LIKE 'baton scheduler: % ticks, interval 60000 ms, last: {%' FROM ($status_sql) AS s(query)"
ok $? "it has ticked, at the configured interval of 60000 ms"
poll 20 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'baton scheduler' AND datname = 'sched_other'
                  AND query = 'baton scheduler: 0 ticks, interval 60000 ms, last: waiting for CREATE EXTENSION baton'"
ok $? "a second listed database gets its own worker, which waits for the extension"
q -c "CREATE ROLE sched_worker LOGIN IN ROLE baton_worker" >/dev/null
[ "$(q -U sched_worker -c "SELECT baton.scheduler_running()")" = t ]
ok $? "a plain baton_worker login sees it through baton.scheduler_running()"

# SIGHUP: from one tick a minute to one every 100 ms.  Five more ticks are
# impossible at the old interval within the deadline, so they prove the reload.
t0=$(ticks)
q -c "ALTER SYSTEM SET baton.tick_interval = 100" -c "SELECT pg_reload_conf()" >/dev/null
poll 20 "SELECT query LIKE '% interval 100 ms,%' FROM ($status_sql) AS s(query)"
ok $? "after ALTER SYSTEM and pg_reload_conf() the worker reports the new interval"
poll 15 "SELECT (SELECT substring(query FROM '^baton scheduler: ([0-9]+) ticks'))::int >= $t0 + 5 FROM ($status_sql) AS s(query)"
ok $? "and ticks at it (at least 5 more ticks)"

# Cron: a yearly schedule made due a second ago is fired by the worker alone.
q -c "SELECT baton.create_queue('cronq')" -c "SELECT baton.schedule('yearly', '0 0 1 1 *', queue => 'cronq', payload => '{\"from\": \"cron\"}')" >/dev/null
q -c "UPDATE baton._schedules SET next_fire_at = now() - interval '1 second' WHERE name = 'yearly'"
poll 20 "SELECT count(*) = 1 FROM baton.tasks WHERE queue = 'cronq' AND payload = '{\"from\": \"cron\"}'"
ok $? "the worker fires a due cron schedule"
q -c "SELECT next_fire_at > now() AND fire_count = 1 FROM baton.schedules WHERE name = 'yearly'" | grep -qx t
ok $? "the schedule moved on to its next future time"

# Exactly once: three sessions call the cron tick in a loop next to the worker.
q -c "SELECT baton.schedule('raced', '0 0 1 1 *', queue => 'cronq')" >/dev/null
for i in 1 2 3; do
    (while :; do q -c "SELECT baton._cron_tick()" >/dev/null 2>&1 || true; done) &
    hammers+=($!)
done
q -c "UPDATE baton._schedules SET next_fire_at = now() - interval '1 second' WHERE name = 'raced'"
poll 20 "SELECT fire_count = 1 FROM baton.schedules WHERE name = 'raced'"
t0=$(ticks)
poll 20 "SELECT (SELECT substring(query FROM '^baton scheduler: ([0-9]+) ticks'))::int >= $t0 + 3 FROM ($status_sql) AS s(query)"
for p in "${hammers[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
hammers=()
[ "$(q -c "SELECT count(*) FROM baton.tasks WHERE queue = 'cronq' AND dedup_key LIKE 'baton:cron:raced:%'")" = 1 ]
ok $? "exactly one task for the fire, despite concurrent ticks"

# Errors: a tick that raises is logged and retried; the worker process survives.
pid=$(worker_pid)
q -c "CREATE OR REPLACE FUNCTION baton._cron_tick() RETURNS jsonb LANGUAGE plpgsql AS \$\$ BEGIN RAISE EXCEPTION 'injected tick failure'; END \$\$" >/dev/null
poll 20 "SELECT query LIKE '% last: failed %' FROM ($status_sql) AS s(query)"
ok $? "a failing tick is reported"
[ "$(worker_pid)" = "$pid" ] && grep -q "injected tick failure" "$("$cluster" dir)/server.log"
ok $? "the error is in the server log and the same worker process goes on"

# Without the extension the worker waits quietly, then resumes.
q -c "DROP EXTENSION baton" >/dev/null
poll 20 "SELECT query LIKE '% last: waiting for CREATE EXTENSION baton' FROM ($status_sql) AS s(query)"
ok $? "without the extension it waits"
sleep 0.5
[ "$(grep -c 'extension "baton" is not installed in database "baton"' "$("$cluster" dir)/server.log")" = 1 ]
ok $? "and says so once in the log"
q -c "CREATE EXTENSION baton" >/dev/null
poll 20 "SELECT query LIKE '% last: {%' FROM ($status_sql) AS s(query)" && [ "$(worker_pid)" = "$pid" ]
ok $? "after CREATE EXTENSION the same worker ticks again"

# pg_ctl restart: fast shutdown SIGTERMs the worker (the stop would time out if
# it ignored that), and the new postmaster starts a fresh one.
start_preloaded 100 || echo "# restart failed: $(tail -3 "$BATON_CLUSTER_DIR.log")"
poll 20 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'baton scheduler' AND datname = 'baton' AND pid <> $pid"
ok $? "after pg_ctl restart a new scheduler worker runs"

# Leases: a task whose lease ran out goes back to pending without anyone calling tick.
q -c "SELECT baton.create_queue('leaseq', lease => '1 hour')" >/dev/null
q -c "SELECT baton.enqueue('leaseq')" -c "SELECT count(*) FROM baton.claim('{leaseq}', 'stuck', 1, session_bound => false)" >/dev/null
q -c "UPDATE baton._tasks SET lease_expires_at = now() - interval '1 second' WHERE queue = 'leaseq'"
poll 20 "SELECT state = 'pending' AND error = 'lease expired' FROM baton.tasks WHERE queue = 'leaseq'"
ok $? "the restarted worker expires a lease in the past: the task is pending again"
