#!/bin/bash
# partitions.sh — the claim path on one task table vs the same table partitioned by queue or by time (docs/scaling.md).
#
#   bench/partitions.sh [--rows N] [--seconds S] [--clients C] [--rounds R]
#
# A standalone experiment, not a make bench section: it starts its own
# throwaway cluster (scripts/cluster.sh, default settings: fsync off,
# synchronous_commit on), builds four copies of a bare task table shaped like
# baton._tasks' claim path (the partial claim index on (queue, priority DESC,
# run_at, id) WHERE state = 'pending'), fills each with N pending tasks over 8
# queues, and drives each with pgbench (prepared statements, C clients, S
# seconds, R rounds taking turns): one transaction claims 10 tasks of a random queue with FOR UPDATE
# SKIP LOCKED and marks them running, the next completes them by id, as
# baton.claim and complete_many do.  Variants:
#   single          one table (baton today)
#   queue8          LIST-partitioned by queue, 8 partitions; complete by id only
#   queue8_keyed    the same, complete by id and queue (pruned to one partition)
#   time8           RANGE-partitioned by created_at, 8 partitions; claims by queue
# Prints tasks/s per run, each variant's median and its ratio to single, plus the plans.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rows=400000 seconds=8 clients=4 rounds=3
while [ $# -gt 0 ]; do
    case $1 in
        --rows) rows=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --clients) clients=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        *) sed -n '2,20p' "$0" >&2; exit 2 ;;
    esac
done
export BATON_CLUSTER_DIR=${BATON_CLUSTER_DIR:-$root/.cluster-partitions}
work=$(mktemp -d)
chmod 755 "$work"
trap '"$root/scripts/cluster.sh" destroy >/dev/null 2>&1; rm -rf "$work"' EXIT
"$root/scripts/cluster.sh" destroy >/dev/null 2>&1 || true
"$root/scripts/cluster.sh" start >/dev/null
eval "$("$root/scripts/cluster.sh" env)"
q() { psql -X -q -tA -v ON_ERROR_STOP=1 "$@"; }

# The four tables.  A partitioned table's primary key must contain its
# partition key, so the partitioned copies key on (id, queue) / (id, created_at).
q <<SQL
CREATE SCHEMA bp;
CREATE TABLE bp.single (id bigserial PRIMARY KEY, queue text NOT NULL, state text NOT NULL,
                        priority int NOT NULL DEFAULT 0, run_at timestamptz NOT NULL DEFAULT now(),
                        created_at timestamptz NOT NULL DEFAULT now(), payload jsonb NOT NULL DEFAULT '{}');
CREATE TABLE bp.queue8 (LIKE bp.single INCLUDING DEFAULTS, PRIMARY KEY (id, queue)) PARTITION BY LIST (queue);
CREATE TABLE bp.time8 (LIKE bp.single INCLUDING DEFAULTS, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
DO \$\$
BEGIN
    FOR i IN 1..8 LOOP
        EXECUTE format('CREATE TABLE bp.queue8_%s PARTITION OF bp.queue8 FOR VALUES IN (%L)', i, 'q' || i);
        EXECUTE format('CREATE TABLE bp.time8_%s PARTITION OF bp.time8 FOR VALUES FROM (%L) TO (%L)', i,
                       '2026-01-01'::date + (i - 1), '2026-01-01'::date + i);
    END LOOP;
END
\$\$;
SQL
for t in single queue8 time8; do
    q -c "CREATE INDEX ON bp.$t (queue, priority DESC, run_at, id) WHERE state = 'pending'"
    # Tasks spread over 8 queues and, for time8, over the 8 days (created_at).
    q -c "INSERT INTO bp.$t (id, queue, state, created_at)
          SELECT i, 'q' || (1 + i % 8), 'pending', '2026-01-01'::date + (i % 8) + interval '1 hour'
            FROM generate_series(1, $rows) AS i"
    q -c "VACUUM ANALYZE bp.$t"
done

# claim 10 of a random queue; complete them (by id, or by id and queue)
script() {
    local table=$1 keyed=$2
    cat <<SQL
\set qn random(1, 8)
WITH c AS (SELECT id FROM bp.$table WHERE queue = 'q' || :qn AND state = 'pending'
            ORDER BY priority DESC, run_at, id LIMIT 10 FOR UPDATE SKIP LOCKED),
     u AS (UPDATE bp.$table AS t SET state = 'running' FROM c WHERE t.id = c.id AND t.queue = 'q' || :qn RETURNING t.id)
SELECT coalesce(array_agg(id), '{}') AS ids FROM u \gset
UPDATE bp.$table SET state = 'succeeded' WHERE id = ANY (:ids::bigint[])$( [ "$keyed" = yes ] && echo " AND queue = 'q' || :qn");
SQL
}

# One run of a variant: prints its tasks/s (10 tasks per transaction pair).
run() {
    local name=$1 table=$2 keyed=$3
    # Every run starts from the same state: all tasks pending again.
    q -c "UPDATE bp.$table SET state = 'pending' WHERE state <> 'pending'" -c "VACUUM ANALYZE bp.$table" >/dev/null
    script "$table" "$keyed" >"$work/$name.sql"
    pgbench -n -M prepared -c "$clients" -j "$clients" -T "$seconds" -f "$work/$name.sql" >"$work/$name.out" 2>&1 \
        || { cat "$work/$name.out" >&2; exit 1; }
    awk '/^tps = / { printf "%.0f\n", $3 * 10 }' "$work/$name.out"
}

# The machine is shared: variants take turns in rounds (the order rotates), and
# each variant's figure is compared with the one-table run of the same round.
echo "# claim 10 + complete 10 per pair of transactions; $rows pending tasks over 8 queues; $clients clients;"
echo "# $rounds rounds of ${seconds}s per variant, turns rotating"
echo "# PostgreSQL $(q -c 'SHOW server_version'), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), commit $(cd "$root" && git rev-parse --short HEAD)"
variants=("single single no" "queue8 queue8 no" "queue8_keyed queue8 yes" "time8 time8 no")
declare -A got
for ((r = 0; r < rounds; r++)); do
    for ((k = 0; k < ${#variants[@]}; k++)); do
        set -- ${variants[$(( (k + r) % ${#variants[@]} ))]}
        got[$1,$r]=$(run "$@")
        printf 'round %d %-13s %8s tasks/s\n' "$((r + 1))" "$1" "${got[$1,$r]}"
    done
done
echo "# median over the rounds; ratio = median of (variant / one table of the same round)"
for v in single queue8 queue8_keyed time8; do
    vals=() ratios=()
    for ((r = 0; r < rounds; r++)); do
        vals+=("${got[$v,$r]}")
        ratios+=("$(awk -v a="${got[$v,$r]}" -v b="${got[single,$r]}" 'BEGIN { printf "%.3f", a / b }')")
    done
    med() { printf '%s\n' "$@" | sort -g | awk '{ x[NR] = $1 } END { print (NR % 2) ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2 }'; }
    printf '%-13s median %8.0f tasks/s   ratio %.2f (rounds: %s)\n' "$v" "$(med "${vals[@]}")" "$(med "${ratios[@]}")" "${ratios[*]}"
done

# The plans behind the figures (generic plans, as prepared statements use them).
for t in single queue8 time8; do
    echo "## plan of the claim on $t"
    q -c "SET plan_cache_mode = force_generic_plan" -c "PREPARE c(text) AS SELECT id FROM bp.$t WHERE queue = \$1 AND state = 'pending'
            ORDER BY priority DESC, run_at, id LIMIT 10 FOR UPDATE SKIP LOCKED" -c "EXPLAIN (COSTS OFF) EXECUTE c('q3')"
    echo "## plan of the completion by id only on $t"
    q -c "SET plan_cache_mode = force_generic_plan" -c "PREPARE d(bigint[]) AS UPDATE bp.$t SET state = 'succeeded' WHERE id = ANY (\$1)" \
      -c "EXPLAIN (COSTS OFF) EXECUTE d('{1,2}')" | head -12
done
echo "## plan of the completion by id and queue on queue8"
q -c "SET plan_cache_mode = force_generic_plan" \
  -c "PREPARE k(bigint[], int) AS UPDATE bp.queue8 SET state = 'succeeded' WHERE id = ANY (\$1) AND queue = 'q' || \$2" \
  -c "EXPLAIN (COSTS OFF) EXECUTE k('{1,2}', 3)" | head -14
