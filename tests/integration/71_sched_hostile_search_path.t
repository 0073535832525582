#!/bin/bash
# 71_sched_hostile_search_path.t — a caller's hostile now(), operators and tables cannot hijack cron or the tick.
# Every scheduler function pins search_path, so objects planted in a schema
# the caller puts first must never run.  Each planted object raises if called.
set -uo pipefail
. "$BATON_ROOT/tests/integration/lib/hostile.sh"
hostile_db baton_sched_hostile_$$
q() { psql -X -q -v ON_ERROR_STOP=1 -d "$hostile_dbname" "$@"; }

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
hostile_run "${calls[@]}"
i=$hostile_n
# The catch-up fire really happened under the hostile search_path.
[ "$(q -tA -c "SELECT count(*) FROM baton.tasks WHERE queue = 'h' AND dedup_key LIKE 'baton:cron:hs:%'")" = 1 ]
if [ $? = 0 ]; then echo "ok $((i + 1)) - the schedule fired once"; else echo "not ok $((i + 1)) - the schedule fired once"; fi
