#!/bin/bash
# 70_rescue.t — a worker killed with kill -9 gets its 100 running tasks rescued within seconds, not after the lease.
#
# The victim is a psql session that claims 100 tasks and then idles; kill -9
# closes its socket, its backend exits, and the next tick sees the claiming
# session gone.  Runs twice: on the shared cluster calling baton.tick() by
# hand (no preload), and on a preloaded cluster where the scheduler
# background worker ticks.  5 s is a generous deadline, not a benchmark.
set -uo pipefail

root=${BATON_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
n=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
q() { psql -X -qtA -v ON_ERROR_STOP=1 "$@"; }
now_ms() { date +%s%3N; }

victim_pid=""
fifo=$(mktemp -u /tmp/baton-rescue.XXXXXX)
cleanup() {
    [ -n "$victim_pid" ] && kill -9 "$victim_pid" 2>/dev/null
    exec 3>&- 2>/dev/null
    rm -f "$fifo" "$root/.cluster-rescue.log"
    dropdb --if-exists baton_rescue >/dev/null 2>&1
    BATON_CLUSTER_DIR="$root/.cluster-rescue" "$root/scripts/cluster.sh" destroy >/dev/null 2>&1
}
trap cleanup EXIT

# Runs one scenario against the database in the PG* environment; $1 names it,
# $2 = "manual" to call baton.tick() while waiting, "bgworker" to only watch.
scenario() {
    local mode=$1 start elapsed deadline id attempt done_ids
    q -c "SELECT baton.create_queue('r', lease => '1 hour')" >/dev/null
    q -c "SELECT count(*) FROM baton.enqueue_many('r', (SELECT jsonb_agg(i) FROM generate_series(1, 100) AS i))" >/dev/null

    # The victim: claims 100 tasks, then idles with its session open.
    mkfifo "$fifo"
    psql -X -q -v ON_ERROR_STOP=1 -f "$fifo" >/dev/null 2>&1 &
    victim_pid=$!
    exec 3>"$fifo"
    echo "SELECT count(*) FROM baton.claim('{r}', 'doomed', 100);" >&3
    deadline=$(( $(now_ms) + 10000 ))
    until [ "$(q -c "SELECT count(*) FROM baton.tasks WHERE worker = 'doomed' AND state = 'running'")" = 100 ]; do
        [ "$(now_ms)" -gt "$deadline" ] && break
        sleep 0.05
    done
    ok $? "$mode: the victim holds 100 running tasks"
    read -r id attempt <<<"$(q -F ' ' -c "SELECT id, attempt FROM baton.tasks WHERE worker = 'doomed' ORDER BY id LIMIT 1")"

    kill -9 "$victim_pid"
    start=$(now_ms)
    { wait "$victim_pid"; } 2>/dev/null
    victim_pid=""
    exec 3>&-
    rm -f "$fifo"
    deadline=$(( start + 5000 ))
    while :; do
        [ "$mode" = manual ] && q -c "SELECT baton.tick()" >/dev/null
        [ "$(q -c "SELECT count(*) FROM baton.tasks WHERE queue = 'r' AND state = 'pending'")" = 100 ] && break
        [ "$(now_ms)" -gt "$deadline" ] && break
        sleep 0.02
    done
    elapsed=$(( $(now_ms) - start ))
    [ "$(q -c "SELECT count(*) FROM baton.tasks WHERE queue = 'r' AND state = 'pending' AND error = 'worker session ended'")" = 100 ]
    ok $? "$mode: all 100 tasks back to pending within 5 s of kill -9 (lease is 1 hour)"
    echo "# $mode: rescued 100 tasks in $elapsed ms"

    # Another claimer does them all.
    done_ids=$(q -c "SELECT count(*) FROM baton.claim('{r}', 'rescuer', 100) AS c, baton.complete(c.id, c.attempt, '{}') AS d WHERE d")
    [ "$done_ids" = 100 ] && [ "$(q -c "SELECT count(*) FROM baton.tasks WHERE queue = 'r' AND state = 'succeeded'")" = 100 ]
    ok $? "$mode: another claimer ran and completed all 100"

    [ "$(q -c "SELECT baton.complete($id, $attempt, '{\"late\": true}')")" = f ] &&
        [ "$(q -c "SELECT result FROM baton.tasks WHERE id = $id")" = '{}' ]
    ok $? "$mode: a late completion from the dead worker's attempt is rejected"
}

echo "1..8"

# Without preload: the shared test cluster, ticking by hand.
createdb -T baton_template baton_rescue
PGDATABASE=baton_rescue scenario manual

# With preload: a cluster of our own whose scheduler background worker ticks.
dir="$root/.cluster-rescue"
export BATON_CLUSTER_DIR=$dir
"$root/scripts/cluster.sh" destroy >/dev/null 2>&1
# Create the database first so the worker finds it at its first start.
{ "$root/scripts/cluster.sh" start && "$root/scripts/cluster.sh" restart --preload; } >"$dir.log" 2>&1 || {
    sed 's/^/# /' "$dir.log"; echo "Bail out! cannot start a preloaded cluster"; exit 1; }
eval "$("$root/scripts/cluster.sh" env)"
deadline=$(( $(now_ms) + 20000 ))
until [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'baton scheduler' AND datname = current_database()")" = 1 ]; do
    [ "$(now_ms)" -gt "$deadline" ] && { echo "Bail out! the scheduler worker did not start"; exit 1; }
    sleep 0.1
done
scenario bgworker
