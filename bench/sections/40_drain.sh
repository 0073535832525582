#!/bin/bash
# 40_drain.sh — baton-worker (noop handler) draining B_DRAIN_TASKS pre-enqueued tasks.
#
# For 1 and 2 worker processes and a sweep of the claim batch size (max_batch), on a queue that
# keeps its finished tasks
# (the default 7-day retention): tasks/s = tasks / (last finished_at - first started_at), both read
# from the tasks themselves.  Then the same on a queue without history (retention 0: a succeeded
# task is deleted by its completion), timed by the server's clock from resume_queue() to the moment
# the queue is seen empty (polled every 2 ms).  The best figure is compared with the best raw SKIP
# LOCKED figure of 10_raw_claim.sh (target: at least 70 %); the best with history with the raw
# update variant, its like-for-like bound.
source "$BENCH_ROOT/bench/lib.sh"
section_init
worker_section bench
q -c "SELECT baton.create_queue('bench_nohist', retention => '0')" >/dev/null || exit 1
# The first moment QUEUE has no live task left, by the server's clock (epoch seconds); NULL on
# timeout.  A procedure that commits between polls: a function would hold one snapshot for the
# whole drain, and with it every deleted task's index entries, slowing the drain it measures.
# It waits for the newest task (claimed last) with a primary-key lookup every 2 ms, and only then
# looks at the whole queue.
q <<'SQL' >/dev/null || exit 1
CREATE PROCEDURE public.bench_wait_empty(queue text, timeout_s double precision, INOUT at double precision DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + timeout_s * interval '1 second';
    newest   bigint := (SELECT max(t.id) FROM baton._tasks AS t WHERE t.queue = bench_wait_empty.queue);
BEGIN
    COMMIT;
    WHILE clock_timestamp() < deadline LOOP
        IF NOT EXISTS (SELECT 1 FROM baton._tasks AS t WHERE t.id = newest AND t.state IN ('pending', 'running'))
           AND NOT EXISTS (SELECT 1 FROM baton._tasks AS t WHERE t.queue = bench_wait_empty.queue
                                                             AND t.state IN ('pending', 'running')) THEN
            at := extract(epoch FROM clock_timestamp());
            RETURN;
        END IF;
        COMMIT;
        PERFORM pg_sleep(0.002);
    END LOOP;
END
$$;
SQL

# config FILE BATCH QUEUE: a worker config for one point of the sweep (max_batch = BATCH).
config() {
    printf '[worker]\nconcurrency = 256\nmax_batch = %s\n[queue %s]\nhandler = noop\n' "$2" "$3" >"$1"
}

# drain PROCS VALUE QUEUE: sets RATE (tasks/s) and NOTE.  QUEUE is bench (history kept) or
# bench_nohist (retention 0: nothing left to read the times from, so the clock is the server's).
drain() {
    local procs=$1 value=$2 queue=$3 pids=() i t0= t1=
    q -c "TRUNCATE baton._tasks" >/dev/null
    [ "$queue" = bench_nohist ] && q -c "SELECT baton.pause_queue('$queue')" >/dev/null
    q -c "SELECT count(*) FROM generate_series(1, $B_DRAIN_TASKS, 10000) AS c,
                 LATERAL baton.enqueue_many('$queue', (SELECT jsonb_agg(jsonb_build_object('n', i))
                                                         FROM generate_series(c, LEAST(c + 9999, $B_DRAIN_TASKS)) AS i))" >/dev/null
    settle
    config "$dir/w.conf" "$value" "$queue"
    for ((i = 0; i < procs; i++)); do
        start_worker "$dir/w.conf" "$BENCH_WORK/logs/drain-worker-$queue-$procs-$value-$i.log"
        pids+=("$WORKER_PID")
    done
    NOTE=
    if [ "$queue" = bench_nohist ]; then
        wait_for "(SELECT count(*) FROM baton.workers) >= $procs" 30 0.1 || NOTE="workers did not register"
        sleep 0.5   # past their start-up statements
        t0=$(q -c "SELECT extract(epoch FROM clock_timestamp())" -c "SELECT baton.resume_queue('$queue')" | head -1)
        t1=$(q -c "CALL bench_wait_empty('$queue', $B_PHASE_TIMEOUT)")
        [ -n "$t1" ] || NOTE="did not drain within $B_PHASE_TIMEOUT s"
    else
        wait_for "NOT EXISTS (SELECT 1 FROM baton._tasks WHERE queue = '$queue' AND state IN ('pending', 'running'))" \
            "$B_PHASE_TIMEOUT" 0.5 || NOTE="did not drain within $B_PHASE_TIMEOUT s"
    fi
    for i in "${pids[@]}"; do bg_stop "$i" 10; done
    local done_n secs left
    if [ "$queue" = bench_nohist ]; then
        # Every completion deleted its task: what is left did not succeed.
        left=$(q -c "SELECT count(*) FROM baton._tasks WHERE queue = '$queue'")
        done_n=$(( B_DRAIN_TASKS - left ))
        secs=$(calc "${t1:-0} - $t0")
        is_true "$secs > 0" || secs=$B_PHASE_TIMEOUT
    else
        read -r done_n secs <<<"$(q -F ' ' -c "SELECT count(*), extract(epoch FROM max(finished_at) - min(started_at))
                                                 FROM baton._tasks WHERE queue = '$queue' AND state = 'succeeded'")"
    fi
    RATE=$(calc "$done_n / $secs")
    [ "$done_n" = "$B_DRAIN_TASKS" ] || NOTE="${NOTE:+$NOTE; }$done_n of $B_DRAIN_TASKS succeeded"
    log "$queue: $procs worker(s), batch $value: $RATE tasks/s"
}

best=0 best_procs= best_value= best_queue=
for queue in bench bench_nohist; do
    qbest=0 qprocs= qvalue=
    for procs in $B_DRAIN_PROCS; do
        for value in $B_DRAIN_SWEEP; do
            drain "$procs" "$value" "$queue"
            if [ "$queue" = bench ]; then
                figure id="drain.w$procs.batch$value" name="worker drain, $procs process(es), batch $value" \
                    value:n="$RATE" unit=tasks/s bound=raw.claim.best note="$NOTE"
            else
                figure id="drain.nohist.w$procs.batch$value" \
                    name="worker drain, no history (retention 0), $procs process(es), batch $value" \
                    value:n="$RATE" unit=tasks/s bound=raw.claim.best note="$NOTE"
            fi
            if is_true "$RATE > $qbest"; then qbest=$RATE; qprocs=$procs qvalue=$value; fi
            if is_true "$RATE > $best"; then best=$RATE; best_procs=$procs best_value=$value best_queue=$queue; fi
        done
    done
    if [ "$queue" = bench ]; then
        figure id=drain.history.best \
            name="worker drain with history kept, best ($qprocs process(es), batch $qvalue)" \
            value:n="$qbest" unit=tasks/s bound=raw.claim.upd.k50 note="like for like: the raw bound that keeps its rows"
    fi
done

note=
raw=$(figure_value raw.claim.best)
if [ "${B_PROFILE:-0}" = 1 ] && [ -n "$raw" ] && is_true "$best < 0.7 * $raw"; then
    log "target missed: profiling one more drain ($best_queue, $best_procs processes, batch $best_value)"
    profile_start drain
    drain "$best_procs" "$best_value" "$best_queue"
    profile_stop drain
    note=$PROFILE_NOTE
fi
what=history
[ "$best_queue" = bench_nohist ] && what="no history"
figure id=drain.best name="worker drain, best ($B_DRAIN_TASKS tasks; $what, $best_procs process(es), batch $best_value)" \
    value:n="$best" unit=tasks/s bound=raw.claim.best target=">=0.70" target_on=ratio note="$note"
part_ok drain
