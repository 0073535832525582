#!/bin/bash
# 40_drain.sh — baton-worker (noop handler) draining B_DRAIN_TASKS pre-enqueued tasks.
#
# For 1 and 2 worker processes and a sweep of claim batch sizes (when the worker accepts a batch
# setting in its config; else a sweep of concurrency), tasks/s = tasks / (last finished_at - first
# started_at), both read from the tasks themselves.  The best figure is compared with the best raw
# SKIP LOCKED figure of 10_raw_claim.sh (target: at least 70 %).
source "$BENCH_ROOT/bench/lib.sh"
section_init
worker_section bench

# Does the worker start with this config?  A config error makes it exit at once.
config_accepted() {
    local pid
    bg "$WORKER_BIN" --config "$1" --dsn "$BENCH_DSN" >>"$BENCH_WORK/logs/drain-config-probe.log" 2>&1
    pid=$BG_PID
    sleep 1.5
    if kill -0 "$pid" 2>/dev/null; then bg_stop "$pid" 10; return 0; fi
    wait "$pid" 2>/dev/null; bg_forget "$pid"
    return 1
}

# Where the batch size goes, if anywhere: found by trying.
knob=
for candidate in "worker:max_batch" "queue:batch" "worker:batch" "queue:claim_batch" "worker:claim_batch"; do
    place=${candidate%%:*} key=${candidate#*:}
    if [ "$place" = queue ]; then
        worker_config "$dir/probe.conf" 64 bench noop "$key = 7"
    else
        printf '[worker]\nconcurrency = 64\n%s = 7\n[queue bench]\nhandler = noop\n' "$key" >"$dir/probe.conf"
    fi
    if config_accepted "$dir/probe.conf"; then knob=$candidate; break; fi
done
if [ -n "$knob" ]; then
    log "worker accepts a batch size as ${knob/:/ section, key }"
    sweep_what=batch
else
    skip batch_sweep "the worker config has no batch size setting (tried max_batch, batch and claim_batch in [worker] and [queue]); swept concurrency instead"
    sweep_what=concurrency
fi

# config FILE VALUE: a config for one point of the sweep.
config() {
    if [ "$sweep_what" = concurrency ]; then
        worker_config "$1" "$2" bench noop
    elif [ "${knob%%:*}" = queue ]; then
        worker_config "$1" 256 bench noop "${knob#*:} = $2"
    else
        printf '[worker]\nconcurrency = 256\n%s = %s\n[queue bench]\nhandler = noop\n' "${knob#*:}" "$2" >"$1"
    fi
}

# drain PROCS VALUE: sets RATE (tasks/s) and NOTE.
drain() {
    local procs=$1 value=$2 pids=() i
    q -c "TRUNCATE baton._tasks" >/dev/null
    q -c "SELECT count(*) FROM generate_series(1, $B_DRAIN_TASKS, 10000) AS c,
                 LATERAL baton.enqueue_many('bench', (SELECT jsonb_agg(jsonb_build_object('n', i))
                                                        FROM generate_series(c, LEAST(c + 9999, $B_DRAIN_TASKS)) AS i))" >/dev/null
    settle
    config "$dir/w.conf" "$value"
    for ((i = 0; i < procs; i++)); do
        start_worker "$dir/w.conf" "$BENCH_WORK/logs/drain-worker-$procs-$value-$i.log"
        pids+=("$WORKER_PID")
    done
    NOTE=
    wait_for "NOT EXISTS (SELECT 1 FROM baton._tasks WHERE queue = 'bench' AND state IN ('pending', 'running'))" \
        "$B_PHASE_TIMEOUT" 0.5 || NOTE="did not drain within $B_PHASE_TIMEOUT s"
    for i in "${pids[@]}"; do bg_stop "$i" 10; done
    local done_n secs
    read -r done_n secs <<<"$(q -F ' ' -c "SELECT count(*), extract(epoch FROM max(finished_at) - min(started_at))
                                             FROM baton._tasks WHERE queue = 'bench' AND state = 'succeeded'")"
    RATE=$(calc "$done_n / $secs")
    [ "$done_n" = "$B_DRAIN_TASKS" ] || NOTE="${NOTE:+$NOTE; }$done_n of $B_DRAIN_TASKS succeeded"
    log "$procs worker(s), $sweep_what $value: $RATE tasks/s"
}

best=0 best_procs= best_value=
for procs in $B_DRAIN_PROCS; do
    for value in $B_DRAIN_SWEEP; do
        drain "$procs" "$value"
        figure id="drain.w$procs.$sweep_what$value" name="worker drain, $procs process(es), $sweep_what $value" \
            value:n="$RATE" unit=tasks/s bound=raw.claim.best note="$NOTE"
        if is_true "$RATE > $best"; then best=$RATE; best_procs=$procs best_value=$value; fi
    done
done

note=
raw=$(figure_value raw.claim.best)
if [ "${B_PROFILE:-0}" = 1 ] && [ -n "$raw" ] && is_true "$best < 0.7 * $raw"; then
    log "target missed: profiling one more drain ($best_procs processes, $sweep_what $best_value)"
    profile_start drain
    drain "$best_procs" "$best_value"
    profile_stop drain
    note=$PROFILE_NOTE
fi
figure id=drain.best name="worker drain, best ($B_DRAIN_TASKS tasks; $best_procs process(es), $sweep_what $best_value)" \
    value:n="$best" unit=tasks/s bound=raw.claim.best target=">=0.70" target_on=ratio note="$note"
part_ok drain
