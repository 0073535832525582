#!/bin/bash
# define_workflow.sh — how define_workflow's time grows with the definition (issue 12 item 10): chains of
# 1,000 and 4,000 steps (each step reading its predecessor's output) and 10,000 independent steps, and the
# 4k/1k ratio (linear: ~4; 0.1.0's ancestor closure: ~30 and more).
#
#   bench/define_workflow.sh            against the database of the PG* environment (baton installed)
#
# Nothing is kept: everything runs in one transaction that is rolled back.
set -euo pipefail
psql -X -q -v ON_ERROR_STOP=1 -At <<'SQL'
BEGIN;
SELECT baton.create_queue('bench_define') \g /dev/null
CREATE FUNCTION pg_temp.chain(n int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('steps', jsonb_object_agg('s' || i,
        CASE WHEN i = 0 THEN jsonb_build_object('queue', 'bench_define')
             ELSE jsonb_build_object('queue', 'bench_define', 'after', jsonb_build_array('s' || (i - 1)),
                                     'input', jsonb_build_object('prev', '$.steps.s' || (i - 1) || '.output'))
        END))
      FROM generate_series(0, n - 1) AS i
$$;
CREATE FUNCTION pg_temp.secs(name text, d jsonb) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t timestamptz := clock_timestamp();
BEGIN
    PERFORM baton.define_workflow(name, d);
    RETURN extract(epoch FROM clock_timestamp() - t);
END $$;
SELECT pg_temp.secs('c1k', pg_temp.chain(1000)) AS c1k \gset
SELECT pg_temp.secs('c4k', pg_temp.chain(4000)) AS c4k \gset
SELECT pg_temp.secs('i10k', (SELECT jsonb_build_object('steps', jsonb_object_agg('s' || i, jsonb_build_object('queue', 'bench_define')))
                               FROM generate_series(1, 10000) AS i)) AS i10k \gset
SELECT format('define_workflow: chain of 1,000 steps %s s, chain of 4,000 steps %s s (ratio %s), 10,000 independent steps %s s',
              round(:c1k::numeric, 2), round(:c4k::numeric, 2), round((:c4k / :c1k)::numeric, 2), round(:i10k::numeric, 2));
ROLLBACK;
SQL
