#!/bin/bash
# 50_latency.sh — enqueue-commit to handler-start latency with an idle claimer.
#
# One client enqueues B_LAT_TASKS tasks one per transaction, B_LAT_GAP_MS apart; each payload carries
# the enqueuing transaction's id.  With track_commit_timestamp = on, the latency of a task is
# started_at (set by the claim, = the noop handler's start) minus pg_xact_commit_timestamp(enqueue xid):
# both are the server's clock, no client clock is involved.  The claimer is baton-worker (noop handler)
# when it works, else bench/tools/listen_claimer.c (LISTEN baton_tasks, claim + complete_many on wakeup).
source "$BENCH_ROOT/bench/lib.sh"
section_init
cluster_up "track_commit_timestamp = on" || exit 1

q -c "SELECT baton.create_queue('lat')" >/dev/null || exit 1
dir=$BENCH_WORK/latency
mkdir -p "$dir"
if why=$(worker_works); then
    worker_config "$dir/worker.conf" 16 lat noop
    start_worker "$dir/worker.conf" "$BENCH_WORK/logs/latency-worker.log"
    claimer="baton-worker, noop handler"
else
    log "worker unavailable ($why); using the LISTEN-based SQL claimer"
    skip worker "$why; measured the LISTEN-based SQL claimer (bench/tools/listen_claimer.c) instead"
    lc=$(build_tool listen_claimer) || exit 1
    bg "$lc" "$BENCH_DSN" lat 16 2>>"$BENCH_WORK/logs/latency-claimer.log"
    claimer="LISTEN SQL claimer (worker not available)"
fi
claimer_pid=$BG_PID
sleep 0.5   # let it connect and LISTEN: the first tasks must not measure the start-up

cat >"$dir/enqueue.sql" <<SQL
SELECT baton.enqueue('lat', jsonb_build_object('xid', txid_current()));
\\sleep $B_LAT_GAP_MS ms
SQL
log "$B_LAT_TASKS tasks, ${B_LAT_GAP_MS} ms apart ($claimer)"
run_pgbench producer -c 1 -t "$B_LAT_TASKS" -f "$dir/enqueue.sql" || exit 1
wait_for "NOT EXISTS (SELECT 1 FROM baton._tasks WHERE queue = 'lat' AND state IN ('pending', 'running'))" 30 0.2 \
    || { log "tasks did not finish within 30 s"; exit 1; }
bg_stop "$claimer_pid" 10

read -r n p50 p95 p99 pmax <<<"$(q -F ' ' -c "
    WITH l AS (
        SELECT extract(epoch FROM t.started_at
                      - pg_xact_commit_timestamp(((t.payload->>'xid')::bigint % 4294967296)::text::xid)) * 1000 AS ms
          FROM baton._tasks AS t WHERE t.queue = 'lat' AND t.state = 'succeeded')
    SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
           percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms) FROM l")"
note=
[ "$n" = "$B_LAT_TASKS" ] || note="only $n of $B_LAT_TASKS tasks succeeded"
figure id=latency.p50 name="enqueue commit → start, p50 ($claimer)" value:n="$p50" unit=ms target="<=1" note="$note"
figure id=latency.p95 name="enqueue commit → start, p95" value:n="$p95" unit=ms
figure id=latency.p99 name="enqueue commit → start, p99" value:n="$p99" unit=ms target="<=3"
figure id=latency.max name="enqueue commit → start, max" value:n="$pmax" unit=ms
part_ok latency
