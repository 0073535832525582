#!/bin/bash
# 80_flatness.sh — does claim stay flat when the table is big?  And what does sustained load leave behind?
#
# Claim latency (1 client, claim 1 + complete, average ms) and SQL drain throughput (B_CLIENTS clients,
# claim 50 + complete_many) on the same queue, measured three times:
#   empty      only the pending tasks being claimed
#   finished   plus B_FLAT_FINISHED succeeded tasks retained in the same queue
#   scheduled  plus B_FLAT_SCHEDULED tasks scheduled a day ahead in the same queue
# Background rows are generated set-based (INSERT ... SELECT generate_series into baton._tasks).  The
# ratios are slowdowns against empty (latency with/empty, throughput empty/with).  Then a sustained
# load (producer + consumer for B_SUSTAIN_SECONDS, autovacuum on, retention of the default 7 days) and
# the dead tuples, sizes and claim latency it leaves.
source "$BENCH_ROOT/bench/lib.sh"
section_init
cluster_up || exit 1

clients=$B_CLIENTS
dir=$BENCH_WORK/flatness
mkdir -p "$dir"
cat >"$dir/claim.sql" <<'SQL'
SELECT COALESCE(array_agg(id), '{}') AS ids, COALESCE(array_agg(attempt), '{}') AS atts
  FROM baton.claim('{flat}', 'pgbench', :k)
\gset
SELECT count(*) FROM baton.complete_many(CAST(:ids AS bigint[]), CAST(:atts AS integer[]));
SQL
q -c "SELECT baton.create_queue('flat')" >/dev/null || exit 1

# Adds the pending tasks the measurements claim (ids after any background rows).
add_pending() {
    q -c "INSERT INTO baton._tasks (queue, state, max_attempts, payload)
          SELECT 'flat', 'pending', 5, jsonb_build_object('n', i) FROM generate_series(1, $1) AS i" >/dev/null
}

# measure LABEL: sets LAT (ms per claim+complete, 1 client) and DRAIN (tasks/s).
measure() {
    local per_client=$(( (B_FLAT_DRAIN + clients * 50 - 1) / (clients * 50) ))
    local warm=$(( B_FLAT_CLAIMS / 5 ))
    add_pending $(( warm + B_FLAT_CLAIMS + per_client * clients * 50 ))
    settle
    # A short warm-up first, so no phase pays for cold caches and plans.
    run_pgbench "$1-warmup" -M prepared -c 1 -t "$warm" -D k=1 -f "$dir/claim.sql" || exit 1
    run_pgbench "$1-latency" -M prepared -c 1 -t "$B_FLAT_CLAIMS" -D k=1 -f "$dir/claim.sql" || exit 1
    LAT=$PGB_LAT
    run_pgbench "$1-drain" -M prepared -c "$clients" -j 2 -t "$per_client" -D k=50 -f "$dir/claim.sql" || exit 1
    DRAIN=$(calc "$PGB_TX * 50 / ($PGB_TX / $PGB_TPS)")
    log "$1: claim latency $LAT ms, drain $DRAIN tasks/s"
}

measure empty
lat0=$LAT drain0=$DRAIN
figure id=flat.empty.claim_ms name="claim+complete latency, empty table" value:n="$lat0" unit=ms
figure id=flat.empty.drain name="SQL drain (k=50), empty table" value:n="$drain0" unit=tasks/s

log "generating $B_FLAT_FINISHED succeeded tasks"
q -c "TRUNCATE baton._tasks" >/dev/null
started=$SECONDS
# Ordered correlation ids keep the generation fast; the claim path never reads them.
timeout -k 5 "$B_PHASE_TIMEOUT" psql -X -q -v ON_ERROR_STOP=1 -c "
    INSERT INTO baton._tasks (queue, state, attempt, max_attempts, payload, result, created_at, started_at,
                              finished_at, run_at, correlation_id)
    SELECT 'flat', 'succeeded', 1, 5, jsonb_build_object('n', i), '{}',
           now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour' + i * interval '1 ms',
           now() - interval '1 hour', lpad(to_hex(i), 32, '0')::uuid
      FROM generate_series(1, $B_FLAT_FINISHED) AS i" || exit 1
log "generated in $((SECONDS - started)) s"
measure finished
figure id=flat.finished.claim_ms name="claim latency with $B_FLAT_FINISHED finished tasks retained" \
    value:n="$LAT" unit=ms bound=flat.empty.claim_ms target="<=1.5" target_on=ratio
figure id=flat.finished.drain name="SQL drain with $B_FLAT_FINISHED finished tasks retained" \
    value:n="$DRAIN" unit=tasks/s bound=flat.empty.drain ratio_mode=inverse target="<=1.5" target_on=ratio \
    note="ratio is the slowdown: empty / with"

log "generating $B_FLAT_SCHEDULED scheduled tasks"
q -c "TRUNCATE baton._tasks" >/dev/null
timeout -k 5 "$B_PHASE_TIMEOUT" psql -X -q -v ON_ERROR_STOP=1 -c "
    INSERT INTO baton._tasks (queue, state, max_attempts, payload, run_at, correlation_id)
    SELECT 'flat', 'scheduled', 5, jsonb_build_object('n', i), now() + interval '1 day' + i * interval '1 ms',
           lpad(to_hex(i), 32, '0')::uuid
      FROM generate_series(1, $B_FLAT_SCHEDULED) AS i" || exit 1
measure scheduled
figure id=flat.scheduled.claim_ms name="claim latency with $B_FLAT_SCHEDULED tasks scheduled ahead" \
    value:n="$LAT" unit=ms bound=flat.empty.claim_ms target="<=1.5" target_on=ratio
figure id=flat.scheduled.drain name="SQL drain with $B_FLAT_SCHEDULED tasks scheduled ahead" \
    value:n="$DRAIN" unit=tasks/s bound=flat.empty.drain ratio_mode=inverse target="<=1.5" target_on=ratio \
    note="ratio is the slowdown: empty / with"

# Sustained load: a rate-limited producer and a consumer that keeps up, side by side.
q -c "TRUNCATE baton._tasks" >/dev/null
settle
echo "SELECT baton.enqueue('flat', '{\"n\": 1}');" >"$dir/produce.sql"
log "sustained load for ${B_SUSTAIN_SECONDS} s"
bg timeout -k 5 $((B_SUSTAIN_SECONDS + 30)) pgbench -n -M prepared -c 2 -R 500 -T "$B_SUSTAIN_SECONDS" \
    -f "$dir/produce.sql" >"$BENCH_WORK/logs/flatness-producer.pgbench" 2>&1
producer=$BG_PID
run_pgbench sustained-consumer -M prepared -c 2 -T "$B_SUSTAIN_SECONDS" -D k=10 -f "$dir/claim.sql" || exit 1
wait "$producer" || { log "producer failed"; tail -3 "$BENCH_WORK/logs/flatness-producer.pgbench" >&2; exit 1; }
bg_forget "$producer"
read -r live dead heap total claim_idx autovac <<<"$(q -F ' ' -c "
    SELECT s.n_live_tup, s.n_dead_tup, pg_relation_size('baton._tasks'), pg_total_relation_size('baton._tasks'),
           pg_relation_size('baton._tasks_claim_idx'), s.autovacuum_count
      FROM pg_stat_user_tables AS s WHERE s.relid = 'baton._tasks'::regclass")"
figure id=flat.sustained.dead_tuples name="dead tuples after ${B_SUSTAIN_SECONDS} s of load ($live live)" \
    value:n="$dead" unit=rows bound_value:n="$live" bound_name="live rows" bound_unit=rows \
    note="autovacuum ran $autovac times on baton._tasks during the load"
figure id=flat.sustained.table_mb name="baton._tasks heap size after load" value:n="$(calc "$heap / 1048576")" unit=MB
figure id=flat.sustained.total_mb name="baton._tasks size with indexes after load" value:n="$(calc "$total / 1048576")" unit=MB
figure id=flat.sustained.claim_idx_kb name="claim index size after load (pending tasks only)" \
    value:n="$(calc "$claim_idx / 1024")" unit=kB
measure sustained
figure id=flat.sustained.claim_ms name="claim latency after the sustained load" \
    value:n="$LAT" unit=ms bound=flat.empty.claim_ms target="<=1.5" target_on=ratio
part_ok flatness
