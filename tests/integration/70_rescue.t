#!/bin/bash
# 70_rescue.t — a worker killed with kill -9 gets its 100 running tasks rescued within seconds, not after the lease.
#
# Victims: a psql session that claims 100 tasks and then idles (kill -9
# closes its socket and its backend exits), and, once it is built, a real
# baton-worker whose exec handler sleeps.  Each runs on the shared cluster
# calling baton.tick() by hand (no preload) and on a preloaded cluster where
# the scheduler background worker ticks.  5 s is a generous deadline, not a
# benchmark; the time taken is printed as a diagnostic.
set -uo pipefail

root=${BATON_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
worker_bin=${BATON_WORKER_BIN:-$root/worker/baton-worker}
n=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
q() { psql -X -qtA -v ON_ERROR_STOP=1 "$@"; }
now_ms() { date +%s%3N; }

tmp=$(mktemp -d /tmp/baton-rescue.XXXXXX)
victim_pid=""
children=()
cleanup() {
    [ -n "$victim_pid" ] && kill -9 "$victim_pid" 2>/dev/null
    for c in "${children[@]}"; do kill -9 "$c" 2>/dev/null; done
    exec 3>&- 2>/dev/null
    rm -rf "$tmp" "$root/.cluster-rescue.log"
    dropdb --if-exists baton_rescue >/dev/null 2>&1
    BATON_CLUSTER_DIR="$root/.cluster-rescue" "$root/scripts/cluster.sh" destroy >/dev/null 2>&1
}
trap cleanup EXIT

# Starts a psql session that claims 100 tasks of queue $1 and then idles with its session open.
start_psql_victim() {
    rm -f "$tmp/fifo" && mkfifo "$tmp/fifo"
    psql -X -q -v ON_ERROR_STOP=1 -f "$tmp/fifo" >/dev/null 2>&1 &
    victim_pid=$!
    exec 3>"$tmp/fifo"
    echo "SELECT count(*) FROM baton.claim('{$1}', 'doomed', 100);" >&3
}

# Starts a baton-worker serving queue $1 with an exec handler that sleeps (it never ticks itself).
start_worker_victim() {
    cat >"$tmp/worker.conf" <<CONF
[worker]
id = doomed
concurrency = 100
max_batch = 100
tick = off
poll_interval = 100ms
[queue $1]
handler = exec
command = sleep 600
timeout = 1h
CONF
    "$worker_bin" --config "$tmp/worker.conf" >"$tmp/worker.log" 2>&1 &
    victim_pid=$!
}

# kill -9 the victim; a worker's handler children (each in its own process
# group) are remembered first so they can be cleaned up afterwards.
kill_victim() {
    children=($(pgrep -P "$victim_pid"))
    kill -9 "$victim_pid"
    { wait "$victim_pid"; } 2>/dev/null
    victim_pid=""
    exec 3>&- 2>/dev/null
    for c in "${children[@]}"; do kill -9 "$c" 2>/dev/null; done
    children=()
}

# scenario MODE VICTIM: MODE "manual" calls baton.tick() while waiting, "bgworker" only watches;
# VICTIM is psql or worker.  Runs against the database in the PG* environment.
scenario() {
    local mode=$1 victim=$2 queue="r_$2" start elapsed deadline id attempt done_n
    q -c "SELECT baton.create_queue('$queue', lease => '1 hour')" >/dev/null
    q -c "SELECT count(*) FROM baton.enqueue_many('$queue', (SELECT jsonb_agg(i) FROM generate_series(1, 100) AS i))" >/dev/null

    "start_${victim}_victim" "$queue"
    deadline=$(( $(now_ms) + 15000 ))
    until [ "$(q -c "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND worker = 'doomed' AND state = 'running'")" = 100 ]; do
        [ "$(now_ms)" -gt "$deadline" ] && break
        sleep 0.05
    done
    ok $? "$mode/$victim: the victim holds 100 running tasks"
    read -r id attempt <<<"$(q -F ' ' -c "SELECT id, attempt FROM baton.tasks WHERE queue = '$queue' AND state = 'running' ORDER BY id LIMIT 1")"

    kill_victim
    start=$(now_ms)
    deadline=$(( start + 5000 ))
    while :; do
        [ "$mode" = manual ] && q -c "SELECT baton.tick()" >/dev/null
        [ "$(q -c "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND state = 'pending'")" = 100 ] && break
        [ "$(now_ms)" -gt "$deadline" ] && break
        sleep 0.02
    done
    elapsed=$(( $(now_ms) - start ))
    [ "$(q -c "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND state = 'pending' AND error = 'worker session ended'")" = 100 ]
    ok $? "$mode/$victim: all 100 tasks back to pending within 5 s of kill -9 (lease is 1 hour)"
    echo "# $mode/$victim: rescued 100 tasks in $elapsed ms"

    # Another claimer does them all.
    done_n=$(q -c "SELECT count(*) FROM baton.claim('{$queue}', 'rescuer', 100) AS c, baton.complete(c.id, c.attempt, '{}') AS d WHERE d")
    [ "$done_n" = 100 ] && [ "$(q -c "SELECT count(*) FROM baton.tasks WHERE queue = '$queue' AND state = 'succeeded'")" = 100 ]
    ok $? "$mode/$victim: another claimer ran and completed all 100"

    [ "$(q -c "SELECT baton.complete($id, $attempt, '{\"late\": true}')")" = f ] &&
        [ "$(q -c "SELECT result FROM baton.tasks WHERE id = $id")" = '{}' ]
    ok $? "$mode/$victim: a late completion from the dead worker's attempt is rejected"
}

# make check builds baton-worker first: a missing binary fails these scenarios, it never skips them.
worker_scenario() {
    if [ -x "$worker_bin" ]; then
        scenario "$1" worker
    else
        for i in 1 2 3 4; do n=$((n + 1)); echo "not ok $n - $1/worker: baton-worker is not built ($worker_bin)"; done
    fi
}

echo "1..16"

# Without preload: the shared test cluster, ticking by hand.
createdb -T baton_template baton_rescue
PGDATABASE=baton_rescue scenario manual psql
PGDATABASE=baton_rescue worker_scenario manual

# With preload: a cluster of our own whose scheduler background worker ticks.
dir="$root/.cluster-rescue"
export BATON_CLUSTER_DIR=$dir
"$root/scripts/cluster.sh" destroy >/dev/null 2>&1
# Create the database first so the worker finds it at its first start.
{ "$root/scripts/cluster.sh" start && "$root/scripts/cluster.sh" restart --preload; } >"$dir.log" 2>&1 || {
    sed 's/^/# /' "$dir.log"; echo "Bail out! cannot start a preloaded cluster"; exit 1; }
eval "$("$root/scripts/cluster.sh" env)"
deadline=$(( $(now_ms) + 20000 ))
until [ "$(q -c "SELECT baton.scheduler_running()")" = t ]; do
    [ "$(now_ms)" -gt "$deadline" ] && { echo "Bail out! the scheduler worker did not start"; exit 1; }
    sleep 0.1
done
scenario bgworker psql
worker_scenario bgworker
