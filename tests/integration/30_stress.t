#!/bin/bash
# 30_stress.t — parallel clients claim and complete 50,000 tasks; a ledger proves each succeeded exactly once.
# Each pgbench transaction claims up to 50 tasks and completes them with
# complete_many, writing the accepted ids to a ledger whose primary key
# rejects any second completion of the same task.
set -uo pipefail
db=baton_stress_$$
N=${BATON_STRESS_TASKS:-50000}
createdb -T baton_template "$db" || { echo "Bail out! cannot create database"; exit 1; }
trap 'dropdb --if-exists "$db"; rm -f "$script"' EXIT
q() { psql -X -q -tA -v ON_ERROR_STOP=1 -d "$db" "$@"; }
echo "1..5"

q <<SQL
SELECT baton.create_queue('stress');
CREATE TABLE ledger (task bigint PRIMARY KEY, worker text NOT NULL);
CREATE FUNCTION stress_step(me text) RETURNS integer LANGUAGE plpgsql AS \$\$
DECLARE ids bigint[]; atts int[]; n int;
BEGIN
    SELECT array_agg(c.id), array_agg(c.attempt) INTO ids, atts FROM baton.claim('{stress}', me, 50) AS c;
    IF ids IS NULL THEN RETURN 0; END IF;
    INSERT INTO ledger SELECT d, me FROM baton.complete_many(ids, atts) AS d;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END \$\$;
-- enqueue in batches, as producers would
SELECT count(*) FROM generate_series(1, $N / 1000) AS b, LATERAL baton.enqueue_many('stress',
    (SELECT jsonb_agg(jsonb_build_object('n', (b - 1) * 1000 + i)) FROM generate_series(1, 1000) AS i)) AS x;
SQL
[ "$(q -c "SELECT count(*) FROM baton.tasks WHERE queue = 'stress' AND state = 'pending'")" = "$N" ] \
    && echo "ok 1 - $N tasks enqueued" || echo "not ok 1 - $N tasks enqueued"

script=$(mktemp)
echo "SELECT stress_step('client-' || :client_id);" > "$script"
clients=6
per_client=$(( N / 50 / clients + 40 ))
if pgbench -n -d "$db" -c $clients -j 2 -t $per_client -f "$script" >"$script.out" 2>&1; then
    echo "ok 2 - $clients parallel clients ran without errors (no double completion hit the ledger key)"
else
    echo "not ok 2 - parallel clients ran without errors"; sed 's/^/# /' "$script.out" | tail -5
fi
rm -f "$script.out"
# Whatever the clients left (if the estimate was short) is finished here.
while [ "$(q -c "SELECT stress_step('sweeper')")" != 0 ]; do :; done

res=$(q -c "SELECT count(*) FILTER (WHERE state = 'succeeded'), count(*) FROM baton.tasks WHERE queue = 'stress'")
[ "$res" = "$N|$N" ] && echo "ok 3 - every task succeeded ($res)" || echo "not ok 3 - every task succeeded ($res)"
led=$(q -c "SELECT count(*), count(DISTINCT task) FROM ledger")
[ "$led" = "$N|$N" ] && echo "ok 4 - ledger holds each task exactly once ($led)" || echo "not ok 4 - ledger holds each task exactly once ($led)"
miss=$(q -c "SELECT count(*) FROM baton.tasks AS t LEFT JOIN ledger AS l ON l.task = t.id WHERE t.queue = 'stress' AND l.task IS NULL")
[ "$miss" = 0 ] && echo "ok 5 - no task missing from the ledger" || echo "not ok 5 - $miss tasks missing from the ledger"
echo "# completions by client: $(q -c "SELECT string_agg(worker || '=' || n, ' ' ORDER BY worker) FROM (SELECT worker, count(*) AS n FROM ledger GROUP BY worker) AS x")"
