#!/bin/bash
# 61_workflow_hostile.t — a caller's hostile search_path (now(), operators, look-alike tables) cannot
# hijack the workflow functions: every step kind runs with planted objects first in the path.
set -uo pipefail
. "$BATON_ROOT/tests/integration/lib/hostile.sh"
hostile_db wf_hostile_$$
q() { psql -X -q -v ON_ERROR_STOP=1 -d "$hostile_dbname" "$@"; }
q -c "SELECT baton.create_queue('h')" >/dev/null

calls=(
  "SELECT baton.define_workflow('hw', '{\"steps\": {\"t\": {\"queue\": \"h\", \"input\": {\"x\": \"\$.input.x\"}, \"compensate\": {\"queue\": \"h\"}}, \"m\": {\"queue\": \"h\", \"map\": \"\$.input.items\", \"after\": [\"t\"]}, \"p\": {\"kind\": \"publish\", \"topic\": \"hp\", \"after\": [\"m\"]}, \"w\": {\"kind\": \"wait_event\", \"topic\": \"he\", \"after\": [\"p\"], \"timeout\": \"1 hour\"}, \"s\": {\"kind\": \"sleep\", \"duration\": \"1 hour\", \"after\": [\"w\"], \"when\": \"\$.input.x == 1\"}}, \"output\": {\"o\": \"\$.steps.m.output\"}}')"
  "SELECT baton.define_workflow('hc', '{\"steps\": {\"c\": {\"kind\": \"workflow\", \"workflow\": \"hw\"}}}')"
  "SELECT baton.start('hc', '{\"x\": 1, \"items\": [1, 2]}', 'k1')"
  "SELECT count(baton.complete(c.id, c.attempt, '{}')) FROM baton.claim('{h}', 'w', 10) AS c"
  "SELECT count(baton.complete(c.id, c.attempt, '{}')) FROM baton.claim('{h}', 'w', 10) AS c"
  "SELECT baton._publish('he', '{}', NULL, NULL, NULL, NULL, NULL)"
  "SELECT baton.tick()"
  "SELECT baton.run_status(1)"
  "SELECT baton.graph(1::bigint) OPERATOR(pg_catalog.||) baton.graph('hw')"
  "SELECT count(*) FROM baton.run_steps"
  "SELECT baton.cancel_run(1)"
  "SELECT count(baton.complete(c.id, c.attempt, '{}')) FROM baton.claim('{h}', 'w', 10) AS c"
  "SELECT count(*) FROM baton._wf_trace((SELECT correlation_id FROM baton.runs WHERE id OPERATOR(pg_catalog.=) 1))"
)
echo "1..$((${#calls[@]} + 1))"
hostile_run "${calls[@]}"
i=$hostile_n
i=$((i + 1))
# The child went all the way: task, map, publish, wait_event woken by the event, sleep; then cancelled.
st=$(psql -X -tA -d "$hostile_dbname" -c "SELECT string_agg(step || '=' || state, ',' ORDER BY ord) FROM baton.run_steps WHERE run_id = 2")
if [ "$st" = "t=compensating,m=succeeded,p=succeeded,w=succeeded,s=cancelled" ] || [ "$st" = "t=compensated,m=succeeded,p=succeeded,w=succeeded,s=cancelled" ]; then
    echo "ok $i - every step kind ran under the hostile search_path"
else
    echo "not ok $i - every step kind ran under the hostile search_path (got $st)"
fi
