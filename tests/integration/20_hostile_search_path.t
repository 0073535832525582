#!/bin/bash
# 20_hostile_search_path.t — a caller's hostile now(), operators and tables cannot hijack any baton function.
# Every baton function pins search_path, so objects planted in a schema the
# caller puts first must never run.  Each planted object raises if called.
set -uo pipefail
. "$BATON_ROOT/tests/integration/lib/hostile.sh"
hostile_db baton_hostile_$$
q() { psql -X -q -v ON_ERROR_STOP=1 -d "$hostile_dbname" "$@"; }

calls=(
  "SELECT baton.create_queue('h', concurrency => 5, rate_limit => 100)"
  "SELECT baton.alter_queue('h', max_attempts => 3)"
  "SELECT baton.enqueue('h', '{\"a\": 1}', dedup_key => 'k')"
  "SELECT baton.enqueue('h', '{}', delay => '1 second')"
  "SELECT count(*) FROM baton.enqueue_many('h', '[1, 2, 3]')"
  "SELECT count(*) FROM baton.claim('{h}', 'w', 2)"
  "SELECT baton.complete((SELECT min(id) FROM baton.tasks WHERE state OPERATOR(pg_catalog.=) 'running'), 1, '{}')"
  "SELECT baton.fail((SELECT min(id) FROM baton.tasks WHERE state OPERATOR(pg_catalog.=) 'running'), 1, 'x')"
  "SELECT count(*) FROM baton.claim('{h}', 'w', 5)"
  "SELECT count(*) FROM baton.heartbeat_many(ARRAY(SELECT id FROM baton.tasks WHERE state OPERATOR(pg_catalog.=) 'running'), ARRAY(SELECT attempt FROM baton.tasks WHERE state OPERATOR(pg_catalog.=) 'running'))"
  "SELECT count(*) FROM baton.release_many(ARRAY(SELECT id FROM baton.tasks WHERE state OPERATOR(pg_catalog.=) 'running'), ARRAY(SELECT attempt FROM baton.tasks WHERE state OPERATOR(pg_catalog.=) 'running'))"
  "SELECT baton.cancel((SELECT min(id) FROM baton.tasks WHERE state OPERATOR(pg_catalog.=) 'pending'))"
  "SELECT baton.retry((SELECT min(id) FROM baton.tasks WHERE state OPERATOR(pg_catalog.=) 'cancelled'))"
  "SELECT baton.explain_task((SELECT min(id) FROM baton.tasks))"
  "SELECT baton.tick()"
  "SELECT baton.purge()"
  "SELECT baton.register_worker('w', '{h}')"
  "SELECT baton.worker_seen('w')"
  "SELECT count(*) FROM baton.queue_stats"
  "SELECT baton.pause_queue('h')"
  "SELECT baton.resume_queue('h')"
  # with grants in force (issue 16): the checks resolve nothing through the caller's search_path
  "SELECT baton.grant_queue('h', 'baton_hostile_p', 'enqueue')"
  "SELECT baton.grant_queue('h', 'baton_hostile_p', 'manage')"
  "SELECT baton.grant_queue('h', 'baton_hostile_w', 'work')"
  "SELECT baton.grant_topic('h.#', 'baton_hostile_p', 'publish')"
  "SET ROLE baton_hostile_p; SELECT baton.enqueue('h', '{}')"
  "SET ROLE baton_hostile_w; SELECT baton.check_worker_access('{h}')"
  "SET ROLE baton_hostile_w; SELECT count(*) FROM baton.claim('{h}', 'w', 5)"
  "SET ROLE baton_hostile_w; SELECT count(*) FROM baton.complete_many(ARRAY(SELECT id FROM baton.tasks WHERE state OPERATOR(pg_catalog.=) 'running'), ARRAY(SELECT attempt FROM baton.tasks WHERE state OPERATOR(pg_catalog.=) 'running'))"
  "SET ROLE baton_hostile_p; SELECT baton.publish('h.x')"
  "SET ROLE baton_hostile_p; SELECT count(*) FROM baton.tasks"
  "SET ROLE baton_hostile_p; SELECT count(*) FROM baton.events"
  "SET ROLE baton_hostile_p; SELECT baton.pause_queue('h'); SELECT baton.resume_queue('h')"
  "SET ROLE baton_hostile_p2; DO \$\$BEGIN PERFORM baton.enqueue('h'); RAISE EXCEPTION 'enqueue without a grant was not refused'; EXCEPTION WHEN insufficient_privilege THEN NULL; END\$\$"
  "SET ROLE baton_hostile_p2; DO \$\$BEGIN IF (SELECT count(*) FROM baton.tasks) OPERATOR(pg_catalog.<>) 0 THEN RAISE EXCEPTION 'tasks of h are visible'; END IF; END\$\$"
  "SELECT baton.revoke_queue('h', 'baton_hostile_p', 'manage')"
  "SELECT baton.drop_queue('h', force => true)"
)
echo "1..${#calls[@]}"
hostile_run "${calls[@]}"
i=$hostile_n
