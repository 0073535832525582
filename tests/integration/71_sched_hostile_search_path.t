#!/bin/bash
# 71_sched_hostile_search_path.t — a caller's hostile now(), operators and tables cannot hijack cron or the tick.
# Every scheduler function pins search_path, so objects planted in a schema
# the caller puts first must never run.  Each planted object raises if called.
set -uo pipefail
db=baton_sched_hostile_$$
createdb -T baton_template "$db" || { echo "Bail out! cannot create database"; exit 1; }
trap 'dropdb --if-exists "$db"' EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }

q <<'SQL'
CREATE SCHEMA hostile;
CREATE FUNCTION hostile.now() RETURNS timestamptz LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile now() was called'; END$$;
CREATE FUNCTION hostile.format(text, VARIADIC "any") RETURNS text LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile format() was called'; END$$;
CREATE FUNCTION hostile.to_char(timestamp, text) RETURNS text LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile to_char() was called'; END$$;
CREATE FUNCTION hostile.jsonb_build_object(VARIADIC "any") RETURNS jsonb LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile jsonb_build_object() was called'; END$$;
CREATE FUNCTION hostile.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile = operator was called'; END$$;
CREATE OPERATOR hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.text_eq);
CREATE FUNCTION hostile.ts_le(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile <= operator was called'; END$$;
CREATE OPERATOR hostile.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = hostile.ts_le);
CREATE FUNCTION hostile.ts_mi(timestamptz, interval) RETURNS timestamptz LANGUAGE plpgsql AS
    $$BEGIN RAISE EXCEPTION 'hostile - operator was called'; END$$;
CREATE OPERATOR hostile.- (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = hostile.ts_mi);
CREATE TABLE hostile._schedules (name text);
CREATE TABLE hostile._tasks (id int);
SQL

calls=(
  "SELECT baton.create_queue('h')"
  "SELECT baton.cron_next('*/5 * * * MON-FRI', '2026-01-01 00:00:00+00')"
  "SELECT baton.schedule('hs', '0 0 1 1 *', queue => 'h', payload => '{\"a\": 1}')"
  "SELECT baton.schedule('hs', '0 0 1 1 *', queue => 'h', catch_up => true)"
  "UPDATE baton._schedules SET next_fire_at = pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 hour'"
  "SELECT baton.tick()"
  "SELECT baton._cron_tick()"
  "SELECT count(*) FROM baton.schedules WHERE fire_count OPERATOR(pg_catalog.=) 1"
  "SELECT baton.scheduler_running()"
  "SELECT baton.unschedule('hs')"
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
# The catch-up fire really happened under the hostile search_path.
[ "$(q -tA -c "SELECT count(*) FROM baton.tasks WHERE queue = 'h' AND dedup_key LIKE 'cron:hs:%'")" = 1 ]
if [ $? = 0 ]; then echo "ok $((i + 1)) - the schedule fired once"; else echo "not ok $((i + 1)) - the schedule fired once"; fi
