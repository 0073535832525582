#!/bin/bash
# 40_events_hostile_search_path.t — a caller's hostile functions, operators and tables cannot hijack the events API.
# Every events function pins search_path, so objects planted in a schema the
# caller puts first must never run.  Each planted object raises if called.
set -uo pipefail
. "$BATON_ROOT/tests/integration/lib/hostile.sh"
hostile_db baton_ev_hostile_$$
q() { psql -X -q -v ON_ERROR_STOP=1 -d "$hostile_dbname" "$@"; }

running="(SELECT min(id) FROM baton.tasks WHERE state OPERATOR(pg_catalog.=) 'running')"
calls=(
  "SELECT baton.create_queue('h')"
  "SELECT baton.subscribe('s1', 'order.*', 'h', filter => '\$.n > 1', on_success => 'ok.done', on_failure => 'ko.done')"
  "SELECT baton.subscribe('s2', 'ok.#', 'h')"
  "SELECT baton.publish('order.placed', '{\"n\": 2}', key => 'k1')"
  "SELECT count(*) FROM baton.claim('{h}', 'w', 1)"
  "SELECT baton.complete($running, 1, '{\"emit\": [{\"topic\": \"order.more\", \"payload\": {\"n\": 0}}]}')"
  "SELECT baton.replay('s1', pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 hour')"
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
hostile_run "${calls[@]}"
i=$hostile_n
# The calls above did real work: the choreography ran (token and emit published).
n=$(psql -X -q -At -d "$hostile_dbname" -c "SELECT count(*) FROM baton.events WHERE topic IN ('ok.done', 'order.more')")
if [ "$n" = 2 ]; then echo "ok $((i + 1)) - the token and the emitted event were published"; else echo "not ok $((i + 1)) - expected 2 events, got $n"; fi
