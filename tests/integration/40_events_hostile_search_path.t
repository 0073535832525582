#!/bin/bash
# 40_events_hostile_search_path.t — a caller's hostile functions, operators and tables cannot hijack the events API.
# Every events function pins search_path, so objects planted in a schema the
# caller puts first must never run.  Each planted object raises if called.
set -uo pipefail
db=baton_ev_hostile_$$
createdb -T baton_template "$db" || { echo "1..0 # Skip cannot create database"; exit 0; }
trap 'dropdb --if-exists "$db"' EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }

q <<'SQL'
CREATE SCHEMA hostile;
CREATE FUNCTION hostile.now() RETURNS timestamptz LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile now() was called'; END$$;
CREATE FUNCTION hostile.jsonb_path_match(jsonb, jsonpath, jsonb, boolean) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile jsonb_path_match() was called'; END$$;
CREATE FUNCTION hostile.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile = operator was called'; END$$;
CREATE OPERATOR hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.text_eq);
CREATE FUNCTION hostile.text_re(text, text) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile ~ operator was called'; END$$;
CREATE OPERATOR hostile.~ (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.text_re);
CREATE FUNCTION hostile.cat(text, text) RETURNS text LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile || operator was called'; END$$;
CREATE OPERATOR hostile.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.cat);
CREATE TABLE hostile._events (id int);
CREATE TABLE hostile._subscriptions (id int);
CREATE TABLE hostile._tasks (id int);
SQL

running="(SELECT min(id) FROM baton.tasks WHERE state OPERATOR(pg_catalog.=) 'running')"
calls=(
  "SELECT baton.create_queue('h')"
  "SELECT baton.subscribe('s1', 'order.*', 'h', filter => '\$.n > 1', on_success => 'ok.done', on_failure => 'ko.done')"
  "SELECT baton.subscribe('s2', 'ok.#', 'h')"
  "SELECT baton.publish('order.placed', '{\"n\": 2}', key => 'k1')"
  "SELECT count(*) FROM baton.claim('{h}', 'w', 1)"
  "SELECT baton.complete($running, 1, '{\"emit\": [{\"topic\": \"order.more\", \"payload\": {\"n\": 0}}]}')"
  "SELECT baton.replay('s1', pg_catalog.now() - interval '1 hour')"
  "SELECT baton.pause_subscription('s1')"
  "SELECT baton.resume_subscription('s1')"
  "SELECT count(*) FROM baton.subscriptions"
  "SELECT count(*) FROM baton.subscription_dead_letters"
  "SELECT baton.retry_dead_letters('s1')"
  "SELECT count(*) FROM baton.trace((SELECT correlation_id FROM baton.events WHERE key OPERATOR(pg_catalog.=) 'k1' LIMIT 1))"
  "SELECT baton.trace_graph((SELECT correlation_id FROM baton.events WHERE key OPERATOR(pg_catalog.=) 'k1' LIMIT 1))"
  "SELECT baton.set_event_retention('1 day')"
  "SELECT baton.tick()"
  "SELECT baton.unsubscribe('s2')"
)
echo "1..$(( ${#calls[@]} + 1 ))"
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
# The calls above did real work: the choreography ran (token and emit published).
n=$(psql -X -q -At -d "$db" -c "SELECT count(*) FROM baton.events WHERE topic IN ('ok.done', 'order.more')")
if [ "$n" = 2 ]; then echo "ok $((i + 1)) - the token and the emitted event were published"; else echo "not ok $((i + 1)) - expected 2 events, got $n"; fi
