#!/bin/bash
# 50_latency.sh — enqueue-commit to handler-start latency with an idle claimer.
#
# One client enqueues B_LAT_TASKS tasks one per transaction, B_LAT_GAP_MS apart; each payload carries
# the enqueuing transaction's id.  With track_commit_timestamp = on, the latency of a task is
# started_at (set by the claim, = the noop handler's start) minus pg_xact_commit_timestamp(enqueue xid):
# both are the server's clock, no client clock is involved.  Measured first with
# bench/tools/listen_claimer.c (LISTEN baton_tasks, claim + complete_many on wakeup: the SQL bound),
# then with baton-worker (noop handler), then with baton-worker after a restart with baton preloaded
# (wake-ups sent by the scheduler worker after commit), to which the targets apply; the ratio to the
# figure before is the latency the deferred wake-up adds.
source "$BENCH_ROOT/bench/lib.sh"
section_init
cluster_up "track_commit_timestamp = on" || exit 1

q -c "SELECT baton.create_queue('lat')" >/dev/null || exit 1
dir=$BENCH_WORK/latency
mkdir -p "$dir"
cat >"$dir/enqueue.sql" <<SQL
SELECT baton.enqueue('lat', jsonb_build_object('xid', txid_current()));
\\sleep $B_LAT_GAP_MS ms
SQL

# measure LABEL: enqueues with the claimer already running, then sets N P50 P95 P99 PMAX.
measure() {
    q -c "DELETE FROM baton._tasks WHERE queue = 'lat'" >/dev/null
    sleep 0.5   # let the claimer connect and LISTEN: the first tasks must not measure its start-up
    log "$1: $B_LAT_TASKS tasks, ${B_LAT_GAP_MS} ms apart"
    run_pgbench "$1" -c 1 -t "$B_LAT_TASKS" -f "$dir/enqueue.sql" || exit 1
    wait_for "NOT EXISTS (SELECT 1 FROM baton._tasks WHERE queue = 'lat' AND state IN ('pending', 'running'))" 30 0.2 \
        || { log "tasks did not finish within 30 s"; exit 1; }
    read -r N P50 P95 P99 PMAX <<<"$(q -F ' ' -c "
        WITH l AS (
            SELECT extract(epoch FROM t.started_at
                          - pg_xact_commit_timestamp(((t.payload->>'xid')::bigint % 4294967296)::text::xid)) * 1000 AS ms
              FROM baton._tasks AS t WHERE t.queue = 'lat' AND t.state = 'succeeded')
        SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
               percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms) FROM l")"
    NOTE=
    [ "$N" = "$B_LAT_TASKS" ] || NOTE="only $N of $B_LAT_TASKS tasks succeeded"
}

lc=$(build_tool listen_claimer) || exit 1
bg "$lc" "$BENCH_DSN" lat 16 2>>"$BENCH_WORK/logs/latency-claimer.log"
claimer_pid=$BG_PID
measure sql
bg_stop "$claimer_pid" 10

why=$(worker_works) || fail worker "$why"
figure id=latency.sql.p50 name="enqueue commit → start, p50 (LISTEN SQL claimer)" value:n="$P50" unit=ms note="$NOTE"
figure id=latency.sql.p99 name="enqueue commit → start, p99 (LISTEN SQL claimer)" value:n="$P99" unit=ms
worker_config "$dir/worker.conf" 16 lat noop
start_worker "$dir/worker.conf" "$BENCH_WORK/logs/latency-worker.log"
worker_pid=$WORKER_PID
measure worker
bg_stop "$worker_pid" 10
pre_note=
if [ -n "${BENCH_SHARED_CLUSTER:-}" ]; then
    pre_note="smoke: the shared cluster is preloaded for both measurements"
fi
figure id=latency.notify.p50 name="enqueue commit → start, p50 (baton-worker, not preloaded: NOTIFY in the transaction)" \
    value:n="$P50" unit=ms note="$NOTE${pre_note:+ $pre_note}"
figure id=latency.notify.p99 name="enqueue commit → start, p99 (not preloaded)" value:n="$P99" unit=ms

# The same with baton preloaded: the scheduler worker sends the wake-up after the commit (wakeup.c).
# Its extra hop is the added latency, against the figures above as the bound.
if [ -z "${BENCH_SHARED_CLUSTER:-}" ]; then
    "$BENCH_ROOT/scripts/cluster.sh" restart --preload >/dev/null || fail preload "the cluster did not restart preloaded"
    wait_for "baton.scheduler_running()" 30 0.1 || fail preload "the scheduler worker did not start"
fi
start_worker "$dir/worker.conf" "$BENCH_WORK/logs/latency-worker-preloaded.log"
worker_pid=$WORKER_PID
measure worker_preloaded
bg_stop "$worker_pid" 10
figure id=latency.p50 name="enqueue commit → start, p50 (baton-worker, noop handler, preloaded)" value:n="$P50" unit=ms \
    bound=latency.notify.p50 target="<=1" note="$NOTE"
figure id=latency.p95 name="enqueue commit → start, p95 (preloaded)" value:n="$P95" unit=ms
figure id=latency.p99 name="enqueue commit → start, p99 (preloaded)" value:n="$P99" unit=ms bound=latency.notify.p99 target="<=3"
figure id=latency.max name="enqueue commit → start, max (preloaded)" value:n="$PMAX" unit=ms
part_ok latency
