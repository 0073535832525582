#!/bin/bash
# 25_dump_restore.t — pg_dump/restore keeps baton's state and its id sequences: nothing collides afterwards.
# baton's tables are extension configuration tables, so pg_dump writes their rows;
# their identity sequences must come along too, or new tasks, runs and events would
# reuse ids that the restored rows already hold.
set -uo pipefail
src=baton_dump_src_$$
dst=baton_dump_dst_$$
dump=$(mktemp)
trap 'dropdb --if-exists "$src"; dropdb --if-exists "$dst"; rm -f "$dump"' EXIT
createdb -T baton_template "$src" || { echo "Bail out! cannot create database"; exit 1; }
q() { local d=$1; shift; psql -X -q -tA -v ON_ERROR_STOP=1 -d "$d" "$@"; }
echo "1..8"

q "$src" >/dev/null <<'SQL'
SELECT baton.create_queue('d');
SELECT baton.enqueue_many('d', '[1, 2, 3]');
SELECT baton.define_workflow('w', '{"steps": {"a": {"queue": "d"}}}');
SELECT baton.start('w');
SELECT baton.subscribe('s', 'x.y', queue => 'd');
SELECT baton.publish('x.y');
SELECT baton.set_event_retention('2 days');
SELECT baton.schedule('nightly', '0 3 * * *', queue => 'd');
SQL
pg_dump -d "$src" >"$dump" 2>&1 && echo "ok 1 - pg_dump" || echo "not ok 1 - pg_dump"
createdb "$dst"
if out=$(psql -X -q -v ON_ERROR_STOP=1 -d "$dst" -f "$dump" 2>&1); then echo "ok 2 - restore without errors"; else echo "not ok 2 - restore without errors"; echo "$out" | sed 's/^/# /' | head -5; fi

same() { if [ "$3" = "$4" ]; then echo "ok $1 - $2"; else echo "not ok $1 - $2 (got '$3', want '$4')"; fi; }
state="SELECT (SELECT count(*) FROM baton.tasks) || '/' || (SELECT count(*) FROM baton.runs) || '/' || (SELECT count(*) FROM baton.events) || '/' || (SELECT count(*) FROM baton.subscriptions) || '/' || (SELECT count(*) FROM baton.schedules)"
same 3 "tasks, runs, events, subscriptions, schedules restored" "$(q "$dst" -c "$state")" "$(q "$src" -c "$state")"
same 4 "a new task gets a fresh id" "$(q "$dst" -c "SELECT baton.enqueue('d') > (SELECT max(id) FROM baton.tasks WHERE payload <> '{}')")" t
same 5 "a new run gets a fresh id" "$(q "$dst" -c "SELECT baton.start('w') > 1")" t
same 6 "a new event gets a fresh id" "$(q "$dst" -c "SELECT baton.publish('x.y') > 1")" t
same 7 "settings survive (event retention)" "$(q "$dst" -c "SELECT retention FROM baton._ev_settings")" "2 days"
corr="SELECT string_agg(correlation_id::text, ' ' ORDER BY id) FROM baton.tasks WHERE queue = 'd' AND run_id IS NULL AND subscription_id IS NULL AND id <= 3"
same 8 "derived correlation ids of plain tasks survive (the database's prefix is restored)" "$(q "$dst" -c "$corr")" "$(q "$src" -c "$corr")"
