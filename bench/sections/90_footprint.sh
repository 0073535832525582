#!/bin/bash
# 90_footprint.sh — baton-worker's memory and CPU with B_FOOT_INFLIGHT tasks in flight.
#
# A stream handler (bench/tools/stream_sleeper.py: one co-process answering each task after 0.5 s)
# keeps B_FOOT_INFLIGHT tasks running at once while the worker works through B_FOOT_TASKS tasks.
# RSS is the worker's peak (VmHWM, the co-process excluded); CPU is the worker's user+system time
# per 1,000 tasks, from /proc.
source "$BENCH_ROOT/bench/lib.sh"
section_init
worker_section foot
worker_config "$dir/w.conf" "$B_FOOT_INFLIGHT" foot stream \
    "command = $PYTHON $BENCH_ROOT/bench/tools/stream_sleeper.py 0.5
concurrency = $B_FOOT_INFLIGHT"
q -c "SELECT count(*) FROM baton.enqueue_many('foot', (SELECT jsonb_agg(i) FROM generate_series(1, $B_FOOT_TASKS) AS i))" >/dev/null
settle
start_worker "$dir/w.conf" "$BENCH_WORK/logs/footprint-worker.log"
pid=$WORKER_PID
inflight_max=0
start=$SECONDS
while [ $((SECONDS - start)) -lt "$B_PHASE_TIMEOUT" ]; do
    read -r running left <<<"$(q -F ' ' -c "SELECT count(*) FILTER (WHERE state = 'running'),
                                                   count(*) FILTER (WHERE state IN ('pending', 'running'))
                                              FROM baton._tasks WHERE queue = 'foot'")"
    [ "$running" -gt "$inflight_max" ] && inflight_max=$running
    [ "$left" = 0 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
done
kill -0 "$pid" 2>/dev/null ||
    fail footprint "baton-worker with a stream handler exited: $(tail -1 "$BENCH_WORK/logs/footprint-worker.log")"
hwm_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
hz=$(getconf CLK_TCK)
bg_stop "$pid" 10
done_n=$(q -c "SELECT count(*) FROM baton._tasks WHERE queue = 'foot' AND state = 'succeeded'")
[ "$done_n" != 0 ] || fail footprint "no task succeeded through the stream handler (see logs/footprint-worker.log)"
note=
[ "$done_n" = "$B_FOOT_TASKS" ] || note="$done_n of $B_FOOT_TASKS tasks succeeded"
figure id=foot.rss name="worker peak RSS, up to $inflight_max of $B_FOOT_INFLIGHT tasks in flight (stream handler)" \
    value:n="$(calc "$hwm_kb / 1024")" unit=MB target="<=20" note="$note"
figure id=foot.cpu name="worker CPU (user+system) per 1,000 tasks" \
    value:n="$(calc "$ticks * 1000 / $hz * 1000 / $done_n")" unit=ms
figure id=foot.inflight name="most tasks seen running at once" value:n="$inflight_max" unit=tasks
part_ok footprint
