#!/bin/bash
# 20_sql_claim.sh — baton.claim + baton.complete_many driven by pgbench: the SQL cost without the daemon.
#
# Same k and clients as the raw bound (10_raw_claim.sh); two commits per k tasks like its upd variant,
# which is the bound each figure is compared with.
source "$BENCH_ROOT/bench/lib.sh"
section_init
cluster_up || exit 1

clients=$B_CLIENTS
sql_dir=$BENCH_WORK/sql_claim
mkdir -p "$sql_dir"
cat >"$sql_dir/claim.sql" <<'SQL'
SELECT COALESCE(array_agg(id), '{}') AS ids, COALESCE(array_agg(attempt), '{}') AS atts
  FROM baton.claim('{bench}', 'pgbench', :k)
\gset
SELECT count(*) FROM baton.complete_many(CAST(:ids AS bigint[]), CAST(:atts AS integer[]));
SQL

q -c "SELECT baton.create_queue('bench')" >/dev/null || exit 1
for k in 1 50; do
    if [ "$k" = 1 ]; then jobs=$B_RAW_JOBS_K1; else jobs=$B_RAW_JOBS_K50; fi
    per_client=$(( (jobs + clients * k - 1) / (clients * k) ))
    jobs=$(( per_client * clients * k ))
    prefill=$(( jobs + clients * k * 4 ))
    q <<SQL >/dev/null || exit 1
TRUNCATE baton._tasks;
INSERT INTO baton._tasks (queue, state, max_attempts, payload)
SELECT 'bench', 'pending', 5, jsonb_build_object('n', i) FROM generate_series(1, $prefill) AS i;
SQL
    settle
    log "baton claim+complete_many k=$k: $jobs tasks, $clients clients"
    run_pgbench "k$k" -M prepared -c "$clients" -j 2 -t "$per_client" -D k="$k" -f "$sql_dir/claim.sql" || exit 1
    done_n=$(q -c "SELECT count(*) FROM baton._tasks WHERE state = 'succeeded'")
    elapsed=$(calc "$PGB_TX / $PGB_TPS")
    rate=$(calc "$done_n / $elapsed")
    note=
    [ "$done_n" = "$jobs" ] || note="expected $jobs tasks succeeded, found $done_n"
    figure id="sql.claim.k$k" name="baton.claim + complete_many, k=$k, $clients clients" \
        value:n="$rate" unit=tasks/s bound="raw.claim.upd.k$k" note="$note"
done
part_ok sql_claim
