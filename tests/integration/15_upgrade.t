#!/bin/bash
# 15_upgrade.t — 0.1.0 filled with real data, upgraded in place, equals a fresh install and keeps working.
#
# (a) the schema after ALTER EXTENSION baton UPDATE equals a fresh install of the
#     current version: both databases have their extension's members detached
#     (ALTER EXTENSION ... DROP, so that pg_dump writes them) and their
#     pg_dump --schema-only outputs are compared; any difference fails with the diff.
#     This is also the check that every change to sql/src/ has its line in the
#     upgrade script.
# (b) the data written through the 0.1.0 API is intact and the workflow that was
#     running (a map and a sleeping step) finishes on the new version.
# (c) the whole pgTAP suite passes against the upgraded database.
set -uo pipefail
root=${BATON_ROOT:?}
cur=$(cat "$root/VERSION")
old=0.1.0
up=baton_up_$$          # 0.1.0 + data, then upgraded
fresh=baton_fresh_$$    # fresh install of the current version
cmp_up=baton_upc_$$     # copies whose members are detached for pg_dump
cmp_fresh=baton_frc_$$
work=$(mktemp -d)
trap 'for d in $up $fresh $cmp_up $cmp_fresh; do dropdb --if-exists "$d"; done; rm -rf "$work"' EXIT
q() { local d=$1; shift; psql -X -q -tA -v ON_ERROR_STOP=1 -d "$d" "$@"; }
n=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
same() { n=$((n + 1)); if [ "$2" = "$3" ]; then echo "ok $n - $1"; else echo "not ok $n - $1"; echo "# got:  $2"; echo "# want: $3"; fi; }
echo "1..14"

[ -f "$root/sql/baton--$old.sql" ]; ok $? "the $old install script is kept in sql/"
[ -f "$root/sql/baton--$old--$cur.sql" ]; ok $? "an upgrade script $old -> $cur exists"
head -20 "$root/sql/baton--$old--$cur.sql" | grep -q '^\\echo Use "ALTER EXTENSION baton UPDATE.*\\quit'
ok $? "the upgrade script starts with the ALTER EXTENSION guard"

out=$(python3 "$root/scripts/upgrade-script.py" "$old" "$cur" --check 2>&1)
ok $? "the committed upgrade script is what scripts/upgrade-script.py makes of sql/src and sql/upgrade" || echo "# $out"

createdb "$up" && createdb "$fresh" || { echo "Bail out! cannot create databases"; exit 1; }
q "$up" -c "CREATE EXTENSION pgtap; CREATE EXTENSION baton VERSION '$old'" >/dev/null
same "$old installs from its script" "$(q "$up" -c "SELECT extversion FROM pg_extension WHERE extname = 'baton'")" "$old"

# Real data through the 0.1.0 API: limited queues, tasks in every state, a
# running workflow with a map and a sleeping step, events, subscriptions, a schedule.
fill=$(q "$up" 2>&1 <<'SQL'
SELECT baton.create_queue('up_a', concurrency => 2, max_attempts => 2);
SELECT baton.create_queue('up_b', rate_limit => 100);
SELECT baton.create_queue('up_wf');
SELECT baton.enqueue('up_a', '{"n": 1}');                               -- succeeded
SELECT baton.enqueue('up_a', '{"n": 2}');                               -- failed
SELECT baton.enqueue('up_a', '{"n": 3}');                               -- cancelled
SELECT baton.enqueue('up_a', '{"n": 4}');                               -- running
SELECT baton.enqueue('up_b', '{"n": 5}', run_at => now() + interval '1 day');  -- scheduled
SELECT baton.enqueue('up_b', '{"n": 6}', dedup_key => 'k6');            -- pending
SELECT baton.complete(id, attempt, '{"ok": true}') FROM baton.claim('{up_a}', 'w0', 1);
SELECT baton.fail(id, attempt, 'boom', retry => false) FROM baton.claim('{up_a}', 'w0', 1);
SELECT baton.cancel(3);
SELECT count(*) FROM baton.claim('{up_a}', 'w0', 1);
SELECT baton.define_workflow('up_flow', '{"steps": {
  "fan":   {"queue": "up_wf", "map": "$.input.items"},
  "nap":   {"kind": "sleep", "duration": "2 seconds", "after": ["fan"]},
  "last":  {"queue": "up_wf", "after": ["nap"]},
  "tell":  {"kind": "publish", "topic": "up.done", "after": ["last"]}}}');
SELECT baton.start('up_flow', '{"items": [1, 2, 3]}', idempotency_key => 'up-run');
SELECT baton.complete(id, attempt, payload) FROM baton.claim('{up_wf}', 'w0', 2);
SELECT baton.subscribe('up_sub', 'up.#', queue => 'up_b');
SELECT baton.publish('up.hello', '{"hi": 1}', key => 'k');
SELECT baton.schedule('up_nightly', '0 3 * * *', queue => 'up_b');
SQL
)
ok $? "0.1.0 filled through its API" || echo "$fill" | sed 's/^/# /'
state="SELECT string_agg(queue || ':' || state || ':' || payload::text, ' ' ORDER BY id) FROM baton.tasks"
before=$(q "$up" -c "$state")
counts="SELECT (SELECT count(*) FROM baton.runs) || '/' || (SELECT count(*) FROM baton.events) || '/' || (SELECT count(*) FROM baton.subscriptions) || '/' || (SELECT count(*) FROM baton.schedules) || '/' || (SELECT count(*) FROM baton.queues)"
counts_before=$(q "$up" -c "$counts")

out=$(q "$up" -c "ALTER EXTENSION baton UPDATE" 2>&1)
ok $? "ALTER EXTENSION baton UPDATE runs" || echo "$out" | sed 's/^/# /'
same "the upgraded extension is $cur" "$(q "$up" -c "SELECT extversion FROM pg_extension WHERE extname = 'baton'")" "$cur"
q "$fresh" -c "CREATE EXTENSION pgtap; CREATE EXTENSION baton" >/dev/null

# (a) schema: detach the members in copies (pg_dump skips extension members),
# dump both, compare.  Everything but the data is compared: tables, columns,
# constraints, indexes, functions with their settings, views, grants, comments.
detach() {
    q "$1" -c "SELECT format('ALTER EXTENSION baton DROP %s %s;', o.type, o.identity)
                 FROM pg_depend d, LATERAL pg_identify_object(d.classid, d.objid, d.objsubid) o
                WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
                  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'baton')" >"$work/$1.detach" &&
    q "$1" -f "$work/$1.detach" >/dev/null
}
normalise() { grep -v -e '^--' -e '^SET ' -e '^SELECT pg_catalog.set_config' -e '^$' -e '^\\restrict' -e '^\\unrestrict'; }
createdb -T "$up" "$cmp_up" && createdb -T "$fresh" "$cmp_fresh" && detach "$cmp_up" && detach "$cmp_fresh" &&
    pg_dump --schema-only -d "$cmp_up" | normalise >"$work/upgraded.sql" &&
    pg_dump --schema-only -d "$cmp_fresh" | normalise >"$work/fresh.sql"
ok $? "both schemas dumped"
if diff -u "$work/fresh.sql" "$work/upgraded.sql" >"$work/schema.diff"; then
    ok 0 "the upgraded schema equals a fresh $cur install"
else
    ok 1 "the upgraded schema equals a fresh $cur install (- fresh, + upgraded)"
    head -150 "$work/schema.diff" | sed 's/^/# /'
fi

# (b) data intact, the running workflow finishes on the new version.
same "tasks written by $old are intact" "$(q "$up" -c "$state")" "$before"
same "runs, events, subscriptions, schedules and queues are intact" "$(q "$up" -c "$counts")" "$counts_before"
q "$up" -c "SELECT baton.complete(id, attempt, payload) FROM baton.claim('{up_wf}', 'w1', 10)" >/dev/null
sleep 2.2   # the sleeping step's timer, started when the map ended
q "$up" -c "SELECT baton.tick()" >/dev/null
q "$up" -c "SELECT baton.complete(id, attempt, '{\"last\": true}') FROM baton.claim('{up_wf}', 'w1', 10)" >/dev/null
same "the workflow started on $old finishes after the upgrade" \
     "$(q "$up" -c "SELECT state || ' ' || (output->'fan')::text FROM baton.runs WHERE workflow = 'up_flow'")" "succeeded [1, 2, 3]"

# (c) the whole pgTAP suite against the upgraded database.  The suite expects
# a database without rows of its own (it counts tasks, schedules...): the data
# checks are done, so the rows go and the upgraded schema stays.
q "$up" -c "SELECT format('TRUNCATE %s RESTART IDENTITY CASCADE', string_agg(c.oid::regclass::text, ', '))
              FROM pg_class c JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass
             WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'baton') AND d.deptype = 'e'
               AND c.relkind = 'r' AND c.relname <> '_instance' AND c.relname NOT LIKE '%settings'" | q "$up" >/dev/null
if out=$(cd "$root" && pg_prove --ext .pg -d "$up" tests/pgtap 2>&1); then
    ok 0 "the pgTAP suite passes against the upgraded database"
else
    ok 1 "the pgTAP suite passes against the upgraded database"
    echo "$out" | grep -v '^tests/.* ok$' | tail -40 | sed 's/^/# /'
fi
