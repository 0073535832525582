#!/bin/bash
# 61_workflow_hostile.t — a caller's hostile search_path (now(), operators, look-alike tables) cannot
# hijack the workflow functions: every step kind runs with planted objects first in the path.
set -uo pipefail
db=wf_hostile_$$
createdb -T baton_template "$db" || { echo "1..0 # Skip cannot create database"; exit 0; }
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT

psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
CREATE SCHEMA hostile;
CREATE FUNCTION hostile.now() RETURNS timestamptz LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile now() was called'; END$$;
CREATE FUNCTION hostile.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile = operator was called'; END$$;
CREATE OPERATOR hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.text_eq);
CREATE FUNCTION hostile.jsonb_concat(jsonb, jsonb) RETURNS jsonb LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile || operator was called'; END$$;
CREATE OPERATOR hostile.|| (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = hostile.jsonb_concat);
CREATE FUNCTION hostile.jsonb_path_query_first(jsonb, jsonpath, jsonb, boolean) RETURNS jsonb LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile jsonb_path_query_first was called'; END$$;
CREATE TABLE hostile._runs (id int);
CREATE TABLE hostile._run_steps (id int);
CREATE TABLE hostile._events (id int);
SELECT baton.create_queue('h');
SQL

calls=(
  "SELECT baton.define_workflow('hw', '{\"steps\": {\"t\": {\"queue\": \"h\", \"input\": {\"x\": \"\$.input.x\"}, \"compensate\": {\"queue\": \"h\"}}, \"m\": {\"queue\": \"h\", \"map\": \"\$.input.items\", \"after\": [\"t\"]}, \"p\": {\"kind\": \"publish\", \"topic\": \"hp\", \"after\": [\"m\"]}, \"w\": {\"kind\": \"wait_event\", \"topic\": \"he\", \"after\": [\"p\"], \"timeout\": \"1 hour\"}, \"s\": {\"kind\": \"sleep\", \"duration\": \"1 hour\", \"after\": [\"w\"], \"when\": \"\$.input.x == 1\"}}, \"output\": {\"o\": \"\$.steps.m.output\"}}')"
  "SELECT baton.define_workflow('hc', '{\"steps\": {\"c\": {\"kind\": \"workflow\", \"workflow\": \"hw\"}}}')"
  "SELECT baton.start('hc', '{\"x\": 1, \"items\": [1, 2]}', 'k1')"
  "SELECT count(baton.complete(c.id, c.attempt, '{}')) FROM baton.claim('{h}', 'w', 10) AS c"
  "SELECT count(baton.complete(c.id, c.attempt, '{}')) FROM baton.claim('{h}', 'w', 10) AS c"
  "SELECT baton._publish('he', '{}', NULL, NULL, NULL, NULL, NULL)"
  "SELECT baton.tick()"
  "SELECT baton.run_status(1)"
  "SELECT baton.graph(1::bigint) || baton.graph('hw')"
  "SELECT count(*) FROM baton.run_steps"
  "SELECT baton.cancel_run(1)"
  "SELECT count(baton.complete(c.id, c.attempt, '{}')) FROM baton.claim('{h}', 'w', 10) AS c"
  "SELECT count(*) FROM baton._wf_trace((SELECT correlation_id FROM baton.runs WHERE id OPERATOR(pg_catalog.=) 1))"
)
echo "1..$((${#calls[@]} + 1))"
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
i=$((i + 1))
# The child went all the way: task, map, publish, wait_event woken by the event, sleep; then cancelled.
st=$(psql -X -tA -d "$db" -c "SELECT string_agg(step || '=' || state, ',' ORDER BY ord) FROM baton.run_steps WHERE run_id = 2")
if [ "$st" = "t=compensating,m=succeeded,p=succeeded,w=succeeded,s=cancelled" ] || [ "$st" = "t=compensated,m=succeeded,p=succeeded,w=succeeded,s=cancelled" ]; then
    echo "ok $i - every step kind ran under the hostile search_path"
else
    echo "not ok $i - every step kind ran under the hostile search_path (got $st)"
fi
