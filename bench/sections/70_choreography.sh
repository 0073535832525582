#!/bin/bash
# 70_choreography.sh — publish fanning out to B_EV_SUBS subscriptions: events/s and tasks/s.
#
# B_CLIENTS clients call baton.publish for B_EV_SECONDS; tasks/s counts the subscriber tasks created.
# The raw bound inserts one event row and B_EV_SUBS task rows per transaction into minimal tables.
# Then the fan-out tasks are drained through SQL (claim 50 + complete_many), subscription hooks included.
source "$BENCH_ROOT/bench/lib.sh"
section_init
cluster_up || exit 1

clients=$B_CLIENTS subs=$B_EV_SUBS
dir=$BENCH_WORK/choreography
mkdir -p "$dir"
q <<SQL >/dev/null || exit 1
SELECT baton.create_queue('ev');
CREATE TABLE raw_events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, topic text NOT NULL,
                         payload jsonb NOT NULL, published_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE rawq (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                   state smallint NOT NULL DEFAULT 0, payload jsonb NOT NULL DEFAULT '{}');
CREATE INDEX rawq_pending ON rawq (id) WHERE state = 0;
SQL

# The subscriptions, and one publish to check that it fans out to each of them.
for ((i = 1; i <= subs; i++)); do
    err=$(try_sql "SELECT baton.subscribe('bench_sub_$i', 'bench.ev', 'ev')") || fail choreography "subscribe: $err"
done
err=$(try_sql "SELECT baton.publish('bench.ev', '{\"probe\": true}')") || fail choreography "publish: $err"
made=$(q -c "SELECT count(*) FROM baton._tasks WHERE queue = 'ev'")
[ "$made" = "$subs" ] || fail choreography "one publish to $subs subscriptions made $made tasks, not $subs"
q -c "DELETE FROM baton._tasks WHERE queue = 'ev'" >/dev/null

cat >"$dir/raw.sql" <<'SQL'
WITH e AS (INSERT INTO raw_events (topic, payload) VALUES ('bench.ev', '{"n": 1}') RETURNING id)
INSERT INTO rawq (payload) SELECT jsonb_build_object('event', e.id, 'sub', s) FROM e, generate_series(1, :subs) AS s;
SQL
echo "SELECT baton.publish('bench.ev', '{\"n\": 1}');" >"$dir/publish.sql"
cat >"$dir/claim.sql" <<'SQL'
SELECT COALESCE(array_agg(id), '{}') AS ids, COALESCE(array_agg(attempt), '{}') AS atts
  FROM baton.claim('{ev}', 'pgbench', 50)
\gset
SELECT count(*) FROM baton.complete_many(CAST(:ids AS bigint[]), CAST(:atts AS integer[]));
SQL

settle
log "raw: 1 event + $subs task rows per transaction, ${B_EV_SECONDS}s"
run_pgbench raw -M prepared -c "$clients" -j 2 -T "$B_EV_SECONDS" -D subs="$subs" -f "$dir/raw.sql" || exit 1
raw_tps=$PGB_TPS
figure id=raw.publish name="raw: 1 event row + $subs task rows per transaction" value:n="$raw_tps" unit=events/s

settle
log "baton.publish to $subs subscriptions, ${B_EV_SECONDS}s"
run_pgbench publish -M prepared -c "$clients" -j 2 -T "$B_EV_SECONDS" -f "$dir/publish.sql" || exit 1
elapsed=$(calc "$PGB_TX / $PGB_TPS")
tasks=$(q -c "SELECT count(*) FROM baton._tasks WHERE queue = 'ev'")
note=
[ "$tasks" = $((PGB_TX * subs)) ] || note="expected $((PGB_TX * subs)) tasks, found $tasks"
figure id=chore.events name="baton.publish, $subs subscriptions, $clients clients" value:n="$PGB_TPS" unit=events/s \
    bound=raw.publish
figure id=chore.tasks name="subscriber tasks created by publish" value:n="$(calc "$tasks / $elapsed")" unit=tasks/s \
    bound_value:n="$(calc "$raw_tps * $subs")" bound_name="raw task rows" note="$note"

settle
per_client=$(( (tasks + clients * 50 - 1) / (clients * 50) ))
log "draining $tasks subscriber tasks"
run_pgbench drain -M prepared -c "$clients" -j 2 -t "$per_client" -f "$dir/claim.sql" || exit 1
done_n=$(q -c "SELECT count(*) FROM baton._tasks WHERE queue = 'ev' AND state = 'succeeded'")
figure id=chore.drain name="subscriber tasks drained via SQL (claim 50 + complete_many)" \
    value:n="$(calc "$done_n / ($PGB_TX / $PGB_TPS)")" unit=tasks/s bound=sql.claim.k50 \
    note="bound: plain tasks, same SQL, from the sql_claim section"
part_ok choreography
