#!/bin/bash
# 60_orchestration.sh — workflow overhead in the database: a 10-step chain, a diamond, a 10,000-way map.
#
# Runs are driven by SQL (a procedure claiming and completing the run's tasks, committing after each
# claim and each completion, as a worker would), so the figures are database time without any daemon.
# The bound is the same work with plain tasks: a chain of tasks where each completion enqueues the next
# in the same transaction; enqueue_many + claim/complete for the map.
source "$BENCH_ROOT/bench/lib.sh"
section_init
cluster_up || exit 1

q -c "SELECT baton.create_queue('wf')" >/dev/null || exit 1
q <<'SQL' >/dev/null || exit 1
-- Claims and completes tasks of queue wf until the run has finished; counts the tasks done.
CREATE PROCEDURE bench_drive(run bigint, batch integer, INOUT tasks integer DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    ids  bigint[];
    atts integer[];
    idle integer := 0;
BEGIN
    LOOP
        SELECT array_agg(c.id), array_agg(c.attempt) INTO ids, atts
          FROM baton.claim('{wf}', 'bench-driver', batch) AS c;
        COMMIT;
        IF ids IS NULL THEN
            EXIT WHEN EXISTS (SELECT 1 FROM baton.runs AS r WHERE r.id = run AND r.finished_at IS NOT NULL);
            idle := idle + 1;
            IF idle > 400 THEN
                RAISE EXCEPTION 'run % stalled: no task to claim and the run has not finished', run;
            END IF;
            PERFORM baton.tick();
            COMMIT;
            PERFORM pg_sleep(0.005);
            CONTINUE;
        END IF;
        idle := 0;
        PERFORM baton.complete_many(ids, atts, array_fill('{"ok": true}'::jsonb, ARRAY[cardinality(ids)]));
        tasks := tasks + cardinality(ids);
        COMMIT;
    END LOOP;
END $$;

-- Starts a run and drives it to the end: elapsed ms, tasks done and the run's final state.
CREATE PROCEDURE bench_run(workflow text, input jsonb, batch integer,
                           INOUT ms float8 DEFAULT NULL, INOUT tasks integer DEFAULT NULL,
                           INOUT start_ms float8 DEFAULT NULL, INOUT final_state text DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    t0  timestamptz := clock_timestamp();
    run bigint;
BEGIN
    tasks := 0;
    run := baton.start(workflow, input);
    COMMIT;
    start_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    CALL bench_drive(run, batch, tasks);
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    SELECT r.state INTO final_state FROM baton.runs AS r WHERE r.id = run;
END $$;

-- The bound for a chain: n plain tasks, each completion enqueueing the next in its transaction.
CREATE PROCEDURE bench_plain_chain(n integer, INOUT ms float8 DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    c  record;
BEGIN
    PERFORM baton.enqueue('wf', '{"i": 1}');
    COMMIT;
    FOR i IN 1..n LOOP
        SELECT x.id, x.attempt INTO c FROM baton.claim('{wf}', 'bench-driver', 1) AS x;
        COMMIT;
        PERFORM baton.complete(c.id, c.attempt, '{"ok": true}');
        IF i < n THEN
            PERFORM baton.enqueue('wf', jsonb_build_object('i', i + 1));
        END IF;
        COMMIT;
    END LOOP;
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;

-- The bound for a map: n plain tasks enqueued in one call, claimed and completed in batches.
CREATE PROCEDURE bench_plain_map(n integer, batch integer, INOUT ms float8 DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    t0   timestamptz := clock_timestamp();
    ids  bigint[];
    atts integer[];
BEGIN
    PERFORM baton.enqueue_many('wf', (SELECT jsonb_agg(i) FROM generate_series(1, n) AS i));
    COMMIT;
    LOOP
        SELECT array_agg(c.id), array_agg(c.attempt) INTO ids, atts FROM baton.claim('{wf}', 'bench-driver', batch) AS c;
        COMMIT;
        EXIT WHEN ids IS NULL;
        PERFORM baton.complete_many(ids, atts, array_fill('{"ok": true}'::jsonb, ARRAY[cardinality(ids)]));
        COMMIT;
    END LOOP;
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
SQL

chain='{"steps": {"s01": {"queue": "wf"}'
for i in 02 03 04 05 06 07 08 09 10; do
    prev=$(printf '%02d' $((10#$i - 1)))
    chain+=", \"s$i\": {\"queue\": \"wf\", \"after\": [\"s$prev\"]}"
done
chain+='}}'
diamond='{"steps": {"a": {"queue": "wf"}, "b": {"queue": "wf", "after": ["a"]},
          "c": {"queue": "wf", "after": ["a"]}, "d": {"queue": "wf", "after": ["b", "c"]}}}'
map='{"steps": {"fan": {"queue": "wf", "map": "$.input.items"}, "join": {"queue": "wf", "after": ["fan"]}}}'

for wf in chain diamond map; do
    err=$(try_sql "SELECT baton.define_workflow('bench_$wf', '${!wf}')") || fail "$wf" "define_workflow: $err"
done

median() { "$PYTHON" -c "import statistics, sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }

# repeat N SQL: runs SQL N+1 times in one session, as a worker's long-lived connection would, and
# prints each run's output line; the first line is the warm-up (plpgsql compiles the engine's
# functions and caches plans once per session: connection cost, not per-step cost).
repeat() {
    local i
    for ((i = 0; i <= $1; i++)); do echo "$2"; done |
        timeout -k 5 "$B_PHASE_TIMEOUT" psql -X -q -v ON_ERROR_STOP=1 -tA -F '|' 2>&1
}

# runs WORKFLOW INPUT BATCH STEPS: median ms per step over B_WF_REPEAT warm runs into PER_STEP and
# the first (cold) run's into COLD_STEP; 1 on failure.
runs() {
    local vals=() out ms tasks start_ms state first=1
    out=$(repeat "$B_WF_REPEAT" "CALL bench_run('$1', '$2', $3);") || { RUN_ERR=$(echo "$out" | grep -m1 ERROR); return 1; }
    while IFS='|' read -r ms tasks start_ms state; do
        [ -n "$ms" ] || continue
        [ "$state" = succeeded ] || { RUN_ERR="run ended $state"; return 1; }
        if [ "$first" = 1 ]; then COLD_STEP=$(calc "$ms / $4"); first=0; continue; fi
        vals+=("$(calc "$ms / $4")")
    done <<<"$out"
    [ "${#vals[@]}" -gt 0 ] || { RUN_ERR="no run finished: $(echo "$out" | head -1)"; return 1; }
    PER_STEP=$(median "${vals[@]}")
}

plain=()
while read -r ms; do
    [ -n "$ms" ] && plain+=("$(calc "$ms / 10")")
done <<<"$(repeat "$B_WF_REPEAT" "CALL bench_plain_chain(10);" | tail -n +2)"
plain_step=$(median "${plain[@]}")
figure id=orch.plain_step name="plain task chained by its predecessor (claim, complete + enqueue next)" \
    value:n="$plain_step" unit=ms/step

# shape WORKFLOW BATCH STEPS LABEL: per-step time and overhead figures of one workflow shape.
shape() {
    runs "bench_$1" '{}' "$2" "$3" || fail "$1" "$RUN_ERR"
    figure id="orch.$1.step" name="$4, DB time per step (median of $B_WF_REPEAT runs in one session)" \
        value:n="$PER_STEP" unit=ms/step bound=orch.plain_step
    figure id="orch.$1.overhead" name="$4, overhead per step over a plain task" \
        value:n="$(calc "$PER_STEP - $plain_step")" unit=ms/step target="<=2" \
        note="warm session; the first run in a fresh session took $(calc "$COLD_STEP") ms/step"
    part_ok "$1"
}
shape chain 1 10 "10-step chain"
shape diamond 10 4 "diamond (a → b, c → d)"

input=$("$PYTHON" -c "import json; print(json.dumps({'items': list(range($B_MAP_N))}))")
echo "$input" >"$BENCH_WORK/map-input.json"
plain_ms=$(q -c "CALL bench_plain_map($B_MAP_N, 200)")
figure id=orch.map.plain name="$B_MAP_N plain tasks: enqueue_many + claim/complete in batches of 200" \
    value:n="$(calc "$plain_ms / 1000")" unit=s
out=$(timeout -k 5 "$B_PHASE_TIMEOUT" psql -X -q -v ON_ERROR_STOP=1 -tA -F '|' \
      -v input="$(cat "$BENCH_WORK/map-input.json")" <<<"CALL bench_run('bench_map', :'input', 200)" 2>&1) || true
IFS='|' read -r ms tasks start_ms state <<<"$out"
[ "${state:-}" = succeeded ] || fail map "$(echo "$out" | grep -m1 ERROR || echo "run ended ${state:-?}")"
target=
[ "$B_MAP_N" -ge 10000 ] && target="<=2"
figure id=orch.map.total name="$B_MAP_N-element map + fan-in, start to run finished (batches of 200)" \
    value:n="$(calc "$ms / 1000")" unit=s bound=orch.map.plain target="$target" \
    note="baton.start (fan-out of $B_MAP_N tasks) took $(calc "$start_ms") ms; $tasks tasks driven"
part_ok map
