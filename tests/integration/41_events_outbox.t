#!/bin/bash
# 41_events_outbox.t — publish is a transactional outbox: nothing on rollback; on commit the event, its
# tasks and one NOTIFY per queue become visible together.
set -uo pipefail
db=baton_ev_outbox_$$
createdb -T baton_template "$db" || { echo "Bail out! cannot create database"; exit 1; }
trap 'dropdb --if-exists "$db"' EXIT
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
n=0
check() {  # check DESCRIPTION EXPECTED ACTUAL
    n=$((n + 1))
    if [ "$2" = "$3" ]; then echo "ok $n - $1"; else echo "not ok $n - $1"; echo "# expected: $2"; echo "# got:      $3"; fi
}
echo "1..5"

q >/dev/null <<'SQL'
SELECT baton.create_queue('qa'); SELECT baton.create_queue('qb');
SELECT baton.subscribe('s1', 'order.placed', 'qa');
SELECT baton.subscribe('s2', 'order.*', 'qb');
SELECT baton.subscribe('s3', 'order.#', 'qb');
SQL

q -c "BEGIN" -c "SELECT baton.publish('order.placed', '{\"n\": 1}')" -c "ROLLBACK" >/dev/null
check "a rolled-back publish leaves no event" "0" "$(q -c 'SELECT count(*) FROM baton.events')"
check "and no task" "0" "$(q -c 'SELECT count(*) FROM baton.tasks')"

# A listener sees, after the commit, exactly one notification per queue that got tasks.
out=$(q <<'SQL' 2>&1
LISTEN baton_tasks;
BEGIN;
SELECT baton.publish('order.placed', '{"n": 2}') IS NOT NULL;
SELECT baton.publish('order.placed', '{"n": 3}') IS NOT NULL;
COMMIT;
SELECT 'done';
SQL
)
notes=$(echo "$out" | grep -o 'Asynchronous notification "baton_tasks" with payload "[a-z]*"' | sort | tr '\n' ' ')
check "one NOTIFY per queue after the commit" \
      'Asynchronous notification "baton_tasks" with payload "qa" Asynchronous notification "baton_tasks" with payload "qb" ' "$notes"
check "the committed events are in the log" "2" "$(q -c 'SELECT count(*) FROM baton.events')"
check "with their tasks: 2 in qa, 4 in qb" "qa 2,qb 4" \
      "$(q -c "SELECT string_agg(queue || ' ' || n, ',' ORDER BY queue) FROM (SELECT queue, count(*) AS n FROM baton.tasks GROUP BY queue) AS x")"
