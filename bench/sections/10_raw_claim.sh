#!/bin/bash
# 10_raw_claim.sh — the raw bound: a minimal queue table drained with FOR UPDATE SKIP LOCKED via pgbench.
#
# Variants (k rows per claim, B_CLIENTS clients, fixed work so the queue never runs dry):
#   upd  claim k rows (UPDATE state 0->1, commit), then complete them (UPDATE 1->2, commit): the shape of
#        a real worker, two commits per k jobs
#   del  claim and delete k rows in one statement: one commit per k jobs
# jobs/s = jobs done / elapsed, with jobs done checked in the table (= tps x k).
source "$BENCH_ROOT/bench/lib.sh"
section_init
cluster_up || exit 1

clients=$B_CLIENTS
sql_dir=$BENCH_WORK/raw_claim
mkdir -p "$sql_dir"
cat >"$sql_dir/upd.sql" <<'SQL'
WITH c AS (
    UPDATE rawq SET state = 1
     WHERE id = ANY (ARRAY(SELECT id FROM rawq WHERE state = 0 ORDER BY id LIMIT :k FOR UPDATE SKIP LOCKED))
    RETURNING id)
SELECT COALESCE(array_agg(id), '{}') AS ids FROM c
\gset
UPDATE rawq SET state = 2 WHERE id = ANY (CAST(:ids AS bigint[]));
SQL
cat >"$sql_dir/del.sql" <<'SQL'
DELETE FROM rawq WHERE id = ANY (ARRAY(SELECT id FROM rawq ORDER BY id LIMIT :k FOR UPDATE SKIP LOCKED));
SQL

best=0; best_id=
for variant in upd del; do
    for k in 1 50; do
        if [ "$k" = 1 ]; then jobs=$B_RAW_JOBS_K1; else jobs=$B_RAW_JOBS_K50; fi
        per_client=$(( (jobs + clients * k - 1) / (clients * k) ))
        jobs=$(( per_client * clients * k ))
        prefill=$(( jobs + clients * k * 4 ))
        q <<SQL >/dev/null || exit 1
DROP TABLE IF EXISTS rawq;
CREATE TABLE rawq (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                   state smallint NOT NULL DEFAULT 0, payload jsonb NOT NULL DEFAULT '{}');
CREATE INDEX rawq_pending ON rawq (id) WHERE state = 0;
INSERT INTO rawq (payload) SELECT jsonb_build_object('n', i) FROM generate_series(1, $prefill) AS i;
SQL
        settle
        log "raw $variant k=$k: $jobs jobs, $clients clients"
        run_pgbench "$variant-k$k" -M prepared -c "$clients" -j 2 -t "$per_client" -D k="$k" \
            -f "$sql_dir/$variant.sql" || exit 1
        if [ "$variant" = upd ]; then
            done_n=$(q -c "SELECT count(*) FROM rawq WHERE state = 2")
        else
            done_n=$(q -c "SELECT $prefill - count(*) FROM rawq")
        fi
        elapsed=$(calc "$PGB_TX / $PGB_TPS")
        rate=$(calc "$done_n / $elapsed")
        note=
        [ "$done_n" = "$jobs" ] || note="expected $jobs jobs done, found $done_n"
        figure id="raw.claim.$variant.k$k" name="raw SKIP LOCKED $variant, k=$k, $clients clients" \
            value:n="$rate" unit=jobs/s note="$note"
        if is_true "$rate > $best"; then best=$rate; best_id="$variant k=$k"; fi
    done
done
figure id=raw.claim.best name="best raw SKIP LOCKED figure ($best_id)" value:n="$best" unit=jobs/s
part_ok raw_claim
