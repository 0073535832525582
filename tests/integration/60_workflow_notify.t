#!/bin/bash
# 60_workflow_notify.t — a client LISTENing on baton_runs hears when a run ends (succeeded, failed, cancelled),
# only once the ending transaction commits, with the output and error when they fit and the workflow is not restricted.
set -uo pipefail
db=wf_notify_$$
createdb -T baton_template "$db" || { echo "Bail out! cannot create database"; exit 1; }
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT

out=$(psql -X -q -v ON_ERROR_STOP=1 -d "$db" 2>&1 <<'SQL'
LISTEN baton_runs;
SELECT baton.create_queue('nq') \g /dev/null
SELECT baton.define_workflow('n', '{"steps": {"a": {"queue": "nq"}}}') \g /dev/null
SELECT baton.start('n') \g /dev/null
SELECT baton.start('n') \g /dev/null
SELECT baton.start('n') \g /dev/null
\echo step1
BEGIN;
SELECT baton.complete(c.id, c.attempt, '{}') FROM baton.claim(ARRAY['nq'], 'w') AS c \g /dev/null
\echo inside
COMMIT;
\echo step2
SELECT baton.fail(c.id, c.attempt, 'x', false) FROM baton.claim(ARRAY['nq'], 'w') AS c \g /dev/null
\echo step3
SELECT baton.cancel_run(3) \g /dev/null
\echo step4
SELECT baton.define_workflow('big', '{"steps": {"a": {"queue": "nq"}}}') \g /dev/null
SELECT baton.start('big') \g /dev/null
SELECT baton.complete(c.id, c.attempt, jsonb_build_object('blob', repeat('x', 9000))) FROM baton.claim(ARRAY['nq'], 'w') AS c \g /dev/null
\echo step5
SELECT baton.define_workflow('secret', '{"steps": {"a": {"queue": "nq"}}}') \g /dev/null
SELECT baton.grant_workflow('secret', 'baton_producer', 'read') \g /dev/null
SELECT baton.start('secret') \g /dev/null
SELECT baton.complete(c.id, c.attempt, '{"card": "4242"}') FROM baton.claim(ARRAY['nq'], 'w') AS c \g /dev/null
\echo done
SQL
)
echo "1..6"
# Notifications print after the command that received them.
if [ "$(printf '%s\n' "$out" | sed -n '/^step1$/,/^inside$/p' | grep -c 'Asynchronous notification')" = 0 ] &&
   printf '%s\n' "$out" | sed -n '/^inside$/,/^step2$/p' | grep -q 'Asynchronous notification "baton_runs" with payload "{"run": 1, "error": null, "state": "succeeded", "output": {"a": {}}, "workflow": "n"}"'; then
    echo "ok 1 - success notified at commit, not before, with the run's output"
else
    echo "not ok 1 - success notified at commit, not before, with the run's output"; printf '# %s\n' "$out"
fi
if printf '%s\n' "$out" | sed -n '/^step2$/,/^step3$/p' | grep -q '"run": 2, "error": "step a failed: x", "state": "failed"\|"run": 2, "error": ".*x.*", "state": "failed"'; then
    echo "ok 2 - failure notified"
else
    echo "not ok 2 - failure notified"; printf '# %s\n' "$out"
fi
if printf '%s\n' "$out" | sed -n '/^step3$/,/^step4$/p' | grep -q '"run": 3, "error": ".*", "state": "cancelled"'; then
    echo "ok 3 - cancellation notified"
else
    echo "not ok 3 - cancellation notified"; printf '# %s\n' "$out"
fi
n=$(printf '%s\n' "$out" | grep -c 'Asynchronous notification "baton_runs"')
if [ "$n" = 5 ]; then echo "ok 4 - one notification per ended run"; else echo "not ok 4 - one notification per ended run (got $n)"; fi
if printf '%s\n' "$out" | sed -n '/^step4$/,/^step5$/p' | grep -q '"run": 4, "error": null, "state": "succeeded", "workflow": "big", "output_too_big": true'; then
    echo "ok 5 - an output too big for a notification is said to be, not sent"
else
    echo "not ok 5 - an output too big for a notification is said to be, not sent"; printf '# %s\n' "$out"
fi
if printf '%s\n' "$out" | sed -n '/^step5$/,/^done$/p' | grep -q 'payload "{"run": 5, "state": "succeeded", "workflow": "secret"}"'; then
    echo "ok 6 - a restricted workflow's run end carries neither output nor error (any role may LISTEN)"
else
    echo "not ok 6 - a restricted workflow's run end carries neither output nor error (any role may LISTEN)"; printf '# %s\n' "$out"
fi
