#!/bin/bash
# 55_steady.sh — steady state: paced producers (one task per transaction) beside baton-worker consumers.
#
# B_CLIENTS producers (pgbench --rate, 8 by default) enqueue one task per transaction at an offered
# rate while one baton-worker process consumes (noop handler, then a stream handler answering at
# once).  The offered rate steps up through B_STEADY_RATES (B_STEADY_STEP_S seconds each) until the
# producers cannot offer it or the backlog (pending + running tasks) grows by more than 0.1 s of
# the rate during the step; the highest step passed gives the sustained rate (tasks done per
# second in it).  Then enqueue-commit -> handler-start latency at 50 % and 80 % of that rate
# (started_at - commit timestamp of the enqueuing xid, as 50_latency.sh).  Then, noop only, the
# sustained rate is offered again while an idle transaction holds an xid (BEGIN; SELECT
# txid_current(); left open) and 4 REPEATABLE READ readers scan the queue's tasks (two scans per
# transaction, 0.5 s apart) for B_IDLE_S seconds, and for B_AFTER_S seconds after they end:
# throughput and latency during and after, table and index sizes before and after.
# The cluster is preloaded: wake-ups go through the scheduler worker (extension/src/wakeup.c).
source "$BENCH_ROOT/bench/lib.sh"
section_init
why=$(worker_built) || fail steady "$why"
cluster_up "track_commit_timestamp = on" --preload || exit 1
why=$(worker_works) || fail steady "$why"
dir=$BENCH_WORK/steady
mkdir -p "$dir"
clients=$B_CLIENTS
q -c "SELECT baton.create_queue('steady_noop')" -c "SELECT baton.create_queue('steady_stream')" >/dev/null || exit 1
cat >"$dir/enqueue.sql" <<'SQL'
SELECT baton.enqueue(:queue, jsonb_build_object('xid', txid_current()));
SQL
cat >"$dir/reader.sql" <<'SQL'
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM baton._tasks WHERE queue = 'steady_noop';
\sleep 500 ms
SELECT count(*) FROM baton._tasks WHERE queue = 'steady_noop';
END;
SQL

# open QUEUE: tasks not yet finished (pending or running).
open_tasks() { q -c "SELECT count(*) FROM baton._tasks WHERE queue = '$1' AND state IN ('pending', 'running')"; }
max_id() { q -c "SELECT COALESCE(max(id), 0) FROM baton._tasks"; }

# offer QUEUE RATE SECONDS LABEL: producers at RATE for SECONDS; sets ID0 ID1 (the tasks enqueued),
# OFFERED_OK (1 when the producers kept up), DONE_RATE (tasks finished per second during the run),
# GREW (backlog growth during the run).
offer() {
    local queue=$1 rate=$2 secs=$3 label=$4 open0 open1 enq
    ID0=$(max_id); open0=$(open_tasks "$queue")
    run_pgbench "$label" -M prepared -c "$clients" -j 2 -T "$secs" --rate "$rate" -D queue="$queue" \
        -f "$dir/enqueue.sql" || exit 1
    ID1=$(max_id); open1=$(open_tasks "$queue")
    enq=$((ID1 - ID0))
    # Per second of the producers' own run (pgbench's connection start-up excluded).
    DONE_RATE=$(calc "($enq - ($open1 - $open0)) / ($PGB_TX / $PGB_TPS)")
    GREW=$((open1 - open0))
    OFFERED_OK=0
    # pgbench --rate schedules a Poisson process: allow 3 standard deviations besides 10 % of lag.
    is_true "$enq >= 0.9 * $rate * $secs - 3 * sqrt($rate * $secs)" && OFFERED_OK=1
}

# drained QUEUE [SECONDS]: waits until the queue has nothing open (at most SECONDS, default 60).
drained() { wait_for "NOT EXISTS (SELECT 1 FROM baton._tasks WHERE queue = '$1' AND state IN ('pending', 'running'))" "${2:-60}" 0.2; }

# lat_of ID0 ID1: sets N P50 P99 over the tasks with ids in (ID0, ID1] that started.
lat_of() {
    read -r N P50 P99 <<<"$(q -F ' ' -c "
        WITH l AS (
            SELECT extract(epoch FROM t.started_at
                          - pg_xact_commit_timestamp(((t.payload->>'xid')::bigint % 4294967296)::text::xid)) * 1000 AS ms
              FROM baton._tasks AS t WHERE t.id > $1 AND t.id <= $2 AND t.started_at IS NOT NULL)
        SELECT count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3),
               round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 3) FROM l")"
}

# variant NAME HANDLER_LINES: the step-up and the two latency points for one handler.
variant() {
    local name=$1 queue=steady_$1 rate sustained= best_offered= step=0 why_stop="every offered rate was sustained"
    printf '[worker]\nconcurrency = 256\n[queue %s]\n%s\n' "$queue" "$2" >"$dir/$name.conf"
    start_worker "$dir/$name.conf" "$BENCH_WORK/logs/steady-worker-$name.log"
    WPID=$WORKER_PID
    sleep 0.5
    for rate in $B_STEADY_RATES; do
        step=$((step + 1))
        log "$name: offered $rate tasks/s for ${B_STEADY_STEP_S}s"
        offer "$queue" "$rate" "$B_STEADY_STEP_S" "$name-step$step"
        kill -0 "$WPID" 2>/dev/null || fail "$name" "baton-worker exited: $(tail -1 "$BENCH_WORK/logs/steady-worker-$name.log")"
        log "$name: $rate offered -> $DONE_RATE done/s, backlog grew by $GREW, producers kept up: $OFFERED_OK"
        # --smoke proves the harness on a machine in any state: its steps have no criteria.
        if [ "$BENCH_MODE" != smoke ]; then
            if [ "$OFFERED_OK" != 1 ]; then why_stop="the producers could not offer $rate tasks/s"; break; fi
            if [ "$GREW" -gt "$(calc "$rate * 0.1 + 50" | cut -d. -f1)" ]; then why_stop="the backlog grew at $rate tasks/s"; break; fi
        fi
        sustained=$DONE_RATE best_offered=$rate
        drained "$queue" 60 || { why_stop="the backlog did not drain after $rate tasks/s"; break; }
    done
    drained "$queue" 120 || fail "$name" "the backlog of queue $queue did not drain within 120 s"
    [ -n "$sustained" ] || fail "$name" "not even the first offered rate was sustained ($why_stop)"
    figure id="steady.$name.sustained" name="steady state, $name handler: highest sustained rate ($clients producers, 1 task per transaction)" \
        value:n="$sustained" unit=tasks/s note="offered $best_offered tasks/s for ${B_STEADY_STEP_S}s; stopped: $why_stop"
    for pct in ${B_STEADY_PCTS:-50 80}; do
        rate=$(calc "$sustained * $pct / 100" | cut -d. -f1)
        [ "$rate" -ge 1 ] || rate=1
        log "$name: latency at $pct % = $rate tasks/s for ${B_STEADY_LAT_S}s"
        offer "$queue" "$rate" "$B_STEADY_LAT_S" "$name-lat$pct"
        drained "$queue" 60 || fail "$name" "the backlog did not drain after the $pct % run"
        lat_of "$ID0" "$ID1"
        local target=
        [ "$name" = noop ] && [ "$pct" = 50 ] && target="<=3"
        figure id="steady.$name.p50_at$pct" name="steady, $name: enqueue commit → handler start p50 at $pct % ($rate tasks/s)" \
            value:n="$P50" unit=ms note="$N tasks"
        figure id="steady.$name.p99_at$pct" name="steady, $name: enqueue commit → handler start p99 at $pct %" \
            value:n="$P99" unit=ms ${target:+target=$target}
    done
    SUSTAINED=$sustained
}

variant noop "handler = noop"
noop_sustained=$SUSTAINED

# --- the idle-in-transaction phase (noop) -------------------------------------------------------
sizes() {
    q -F ' ' -c "SELECT round(pg_relation_size('baton._tasks') / 1048576.0, 2),
                        round(pg_indexes_size('baton._tasks') / 1048576.0, 2),
                        (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'baton._tasks'::regclass)"
}
read -r heap0 idx0 dead0 <<<"$(sizes)"
rate=$(printf '%.0f' "$noop_sustained")
log "idle phase: an idle transaction holding an xid and 4 REPEATABLE READ readers for ${B_IDLE_S}s, offered $rate tasks/s"
mkfifo "$dir/idle.in"
bg psql -X -q -f "$dir/idle.in" >/dev/null 2>&1
idle_pid=$BG_PID
exec 5>"$dir/idle.in"
echo "BEGIN; SELECT txid_current();" >&5
wait_for "EXISTS (SELECT 1 FROM pg_stat_activity WHERE state = 'idle in transaction' AND backend_xid IS NOT NULL)" 20 0.1 \
    || fail idle "the idle transaction did not start"
bg timeout -k 5 $((B_IDLE_S + 30)) pgbench -n -c 4 -j 1 -T "$B_IDLE_S" -f "$dir/reader.sql" >"$BENCH_WORK/logs/steady-readers.pgbench" 2>&1
readers_pid=$BG_PID
offer steady_noop "$rate" "$B_IDLE_S" idle
idle_rate=$DONE_RATE idle0=$ID0 idle1=$ID1
echo "COMMIT;" >&5
exec 5>&-
bg_stop "$idle_pid" 10
wait "$readers_pid" 2>/dev/null || true
bg_forget "$readers_pid"
read -r heap1 idx1 dead1 <<<"$(sizes)"
log "after the idle phase: offered $rate tasks/s for ${B_AFTER_S}s"
offer steady_noop "$rate" "$B_AFTER_S" after
after_rate=$DONE_RATE after0=$ID0 after1=$ID1
drained steady_noop 120 || fail idle "the backlog did not drain within 120 s after the idle phase"
lat_of "$idle0" "$idle1"; idle_p99=$P99; idle_n=$N
lat_of "$after0" "$after1"; after_p99=$P99
read -r heap2 idx2 dead2 <<<"$(sizes)"
figure id=steady.idle.rate name="steady, noop: tasks done per second while an xid is held idle ${B_IDLE_S}s + 4 REPEATABLE READ readers" \
    value:n="$idle_rate" unit=tasks/s bound=steady.noop.sustained target=">=0.5" target_on=ratio note="offered $rate tasks/s"
figure id=steady.idle.p99 name="steady, noop: p99 enqueue → start during the idle phase" value:n="$idle_p99" unit=ms note="$idle_n tasks"
figure id=steady.after.rate name="steady, noop: tasks done per second in the ${B_AFTER_S}s after the idle phase" \
    value:n="$after_rate" unit=tasks/s bound=steady.noop.sustained target=">=0.9" target_on=ratio
figure id=steady.after.p99 name="steady, noop: p99 enqueue → start after the idle phase" value:n="$after_p99" unit=ms
figure id=steady.size.heap name="baton._tasks heap: before / end of idle phase / after (MB)" value:n="$heap1" unit=MB \
    note="before $heap0 MB, end of idle phase $heap1 MB, after $heap2 MB; dead tuples $dead0 / $dead1 / $dead2"
figure id=steady.size.indexes name="baton._tasks indexes: before / end of idle phase / after (MB)" value:n="$idx1" unit=MB \
    note="before $idx0 MB, end of idle phase $idx1 MB, after $idx2 MB"

bg_stop "$WPID" 10
variant stream "handler = stream
command = $PYTHON $BENCH_ROOT/bench/tools/stream_sleeper.py 0"
bg_stop "$WPID" 10
part_ok steady
