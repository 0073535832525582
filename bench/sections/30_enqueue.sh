#!/bin/bash
# 30_enqueue.sh — baton.enqueue (one per transaction) and enqueue_many (batches of 50) against raw INSERTs.
#
# The raw bound inserts into the same minimal queue table as 10_raw_claim.sh (primary key + a partial
# pending index); baton's table carries the indexes of the task core.  B_CLIENTS clients, -T seconds each.
# The cluster is preloaded (the recommended setup): an enqueue's wake-up is handed to the scheduler
# worker at commit instead of a NOTIFY that serialises the committing producers (wakeup.c).
source "$BENCH_ROOT/bench/lib.sh"
section_init
cluster_up "" --preload || exit 1

clients=$B_CLIENTS k=50
dir=$BENCH_WORK/enqueue
mkdir -p "$dir"
arr=$("$PYTHON" -c "import json; print(json.dumps([{'n': i} for i in range($k)], separators=(',', ':')))")
echo "INSERT INTO rawq (payload) VALUES ('{\"n\": 1}');" >"$dir/raw_single.sql"
echo "INSERT INTO rawq (payload) SELECT e FROM jsonb_array_elements(CAST(:arr AS jsonb)) AS e;" >"$dir/raw_batch.sql"
echo "SELECT baton.enqueue('bench', '{\"n\": 1}');" >"$dir/baton_single.sql"
echo "SELECT count(*) FROM baton.enqueue_many('bench', CAST(:arr AS jsonb));" >"$dir/baton_batch.sql"

q <<'SQL' >/dev/null || exit 1
CREATE TABLE rawq (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                   state smallint NOT NULL DEFAULT 0, payload jsonb NOT NULL DEFAULT '{}');
CREATE INDEX rawq_pending ON rawq (id) WHERE state = 0;
SELECT baton.create_queue('bench');
SQL

# measure NAME SCRIPT ROWS_PER_TXN: sets RATE (rows/s, counted in the table).
measure() {
    q -c "TRUNCATE rawq; TRUNCATE baton._tasks" >/dev/null
    settle
    log "$1: $clients clients, ${B_ENQ_SECONDS}s"
    local how=(-T "$B_ENQ_SECONDS")
    [ -n "${B_ENQ_TX:-}" ] && how=(-t "$B_ENQ_TX")   # smoke: a fixed count, shorter than pgbench's 1 s minimum
    run_pgbench "$1" -M prepared -c "$clients" -j 2 "${how[@]}" -D arr="$arr" -f "$dir/$2" || exit 1
    local rows
    rows=$(q -c "SELECT (SELECT count(*) FROM rawq) + (SELECT count(*) FROM baton._tasks)")
    RATE=$(calc "$rows / ($PGB_TX / $PGB_TPS)")
}

measure raw_single raw_single.sql 1
figure id=raw.insert.single name="raw INSERT, 1 row per transaction" value:n="$RATE" unit=rows/s
measure raw_batch raw_batch.sql $k
figure id=raw.insert.batch name="raw INSERT, $k rows per statement" value:n="$RATE" unit=rows/s
measure baton_single baton_single.sql 1
figure id=enqueue.single name="baton.enqueue, 1 per transaction (preloaded)" value:n="$RATE" unit=tasks/s bound=raw.insert.single \
    target=">=0.8" target_on=ratio
measure baton_batch baton_batch.sql $k
figure id=enqueue.many name="baton.enqueue_many, $k per call" value:n="$RATE" unit=tasks/s bound=raw.insert.batch
# For comparison, the same cluster restarted without preload: each enqueue NOTIFYs in its transaction.
note=
if [ -z "${BENCH_SHARED_CLUSTER:-}" ]; then
    "$BENCH_ROOT/scripts/cluster.sh" restart >/dev/null || fail enqueue "the cluster did not restart without preload"
else
    note="smoke: the shared cluster stays preloaded"
fi
measure baton_single_notify baton_single.sql 1
figure id=enqueue.single.notify name="baton.enqueue, 1 per transaction, not preloaded (NOTIFY in the transaction)" \
    value:n="$RATE" unit=tasks/s bound=raw.insert.single note="$note"
part_ok enqueue
