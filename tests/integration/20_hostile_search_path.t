#!/bin/bash
# 20_hostile_search_path.t — a caller's hostile now(), operators and tables cannot hijack any baton function.
# Every baton function pins search_path, so objects planted in a schema the
# caller puts first must never run.  Each planted object raises if called.
set -uo pipefail
db=baton_hostile_$$
createdb -T baton_template "$db" || { echo "1..0 # Skip cannot create database"; exit 0; }
trap 'dropdb --if-exists "$db"' EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }

q <<'SQL'
CREATE SCHEMA hostile;
CREATE FUNCTION hostile.now() RETURNS timestamptz LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile now() was called'; END$$;
CREATE FUNCTION hostile.random() RETURNS double precision LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile random() was called'; END$$;
CREATE FUNCTION hostile.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile = operator was called'; END$$;
CREATE OPERATOR hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.text_eq);
CREATE FUNCTION hostile.int_lt(integer, integer) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile < operator was called'; END$$;
CREATE OPERATOR hostile.< (LEFTARG = integer, RIGHTARG = integer, FUNCTION = hostile.int_lt);
CREATE TABLE hostile._tasks (id int);
CREATE TABLE hostile._queues (id int);
SQL

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
  "SELECT baton.drop_queue('h', force => true)"
)
echo "1..${#calls[@]}"
i=0
for c in "${calls[@]}"; do
    i=$((i + 1))
    if out=$(PGOPTIONS='-c search_path=hostile,public,pg_catalog' psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "$c" 2>&1); then
        echo "ok $i - $c"
    else
        echo "not ok $i - $c"
        echo "$out" | sed 's/^/# /'
    fi
done
