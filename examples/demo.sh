#!/bin/bash
# demo.sh — baton end to end on a throwaway cluster (make demo), or left running to explore (make up / make down).
#
#   examples/demo.sh          the demo: orchestration, choreography and a declined payment; exits
#                             non-zero if any expected outcome did not happen; stops everything
#   examples/demo.sh --up     cluster, example services and workers left running (make up)
#   examples/demo.sh --down   stop what --up started (make down)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-run}
if [ "$mode" = run ]; then
    export BATON_CLUSTER_DIR=${BATON_DEMO_CLUSTER_DIR:-$root/.cluster-demo}
else
    export BATON_CLUSTER_DIR=${BATON_CLUSTER_DIR:-$root/.cluster}
fi
# Where the cluster really lives (cluster.sh may move it to /tmp): pid files and logs go there.
state=$("$root/scripts/cluster.sh" dir)
mkdir -p "$state"
services=$root/examples/services
worker_bin=$root/worker/baton-worker
timeout_s=${BATON_DEMO_TIMEOUT:-90}

if [ -t 1 ]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; Y=$'\e[33m'; D=$'\e[2m'; N=$'\e[0m'; else B= G= R= Y= D= N=; fi
say() { printf '%s\n' "$*"; }
title() { printf '\n%s== %s ==%s\n' "$B" "$*" "$N"; }

q() { psql -X -q -tA -v ON_ERROR_STOP=1 "$@"; }

start_all() {
    conninfo=$("$root/scripts/cluster.sh" start)
    eval "$("$root/scripts/cluster.sh" env)"
    # A cluster kept from an older checkout (make up) may hold an older release: update it in
    # place.  (Within one unreleased version the schema can still change; 'make clean' then.)
    local have; have=$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'baton'")
    if [ "$have" != "$(cat "$root/VERSION")" ] && ! q -c "ALTER EXTENSION baton UPDATE" >/dev/null; then
        echo "this cluster ($BATON_CLUSTER_DIR) holds baton $have, which does not update: run 'make clean' and try again" >&2
        exit 1
    fi
    q -f "$root/examples/demo.sql" >/dev/null
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    python3 "$services/payments.py" "$port" >"$state/payments.log" 2>&1 &
    echo $! >"$state/payments.pid"
    sed -e "s|@SERVICES@|$services|g" -e "s|@PAYMENTS_PORT@|$port|g" \
        "$root/examples/worker.conf" >"$state/worker.conf"
    for n in 1 2; do
        "$worker_bin" --config "$state/worker.conf" --dsn "$conninfo" >"$state/worker-$n.log" 2>&1 &
        echo $! >"$state/worker-$n.pid"
    done
}

# The dashboard on a free loopback port; its first line names the address.
start_web() {
    "$root/console/baton" --dsn "$conninfo" web --listen 127.0.0.1:0 >"$state/web.log" 2>&1 &
    echo $! >"$state/web.pid"
    web_url=
    for _ in $(seq 100); do
        web_url=$(grep -o 'http://[0-9.:]*/' "$state/web.log" 2>/dev/null || true)
        [ -n "$web_url" ] && break
        sleep 0.1
    done
    if [ -z "$web_url" ]; then
        echo "baton web did not start:" >&2; cat "$state/web.log" >&2; exit 1
    fi
}

stop_all() {
    local pidfile pid
    for pidfile in "$state"/worker-*.pid "$state"/payments.pid "$state"/web.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pidfile in "$state"/worker-*.pid "$state"/payments.pid "$state"/web.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$pidfile"
    done
}

case "$mode" in
    --up)
        start_all
        start_web
        say "baton is up: a cluster, the example services, two baton-worker daemons and the dashboard."
        say "  dashboard:  $web_url"
        say "  psql \"$conninfo\""
        say "  console/baton --dsn \"$conninfo\" status      # the command line (make install puts baton in PATH)"
        say "Try:  SELECT baton.start('order_fulfilment', '{\"id\": \"X-1\", \"card\": \"4242\", \"items\": [{\"sku\": \"book\", \"price\": 12}]}');"
        say "      SELECT baton.publish('order.placed', '{\"order\": {\"id\": \"Y-1\", \"card\": \"4242\", \"items\": [{\"sku\": \"pen\", \"price\": 2}]}}', key => 'Y-1');"
        say "Stop with: make down"
        exit 0 ;;
    --down)
        stop_all
        "$root/scripts/cluster.sh" stop
        say "baton is down (data kept in $BATON_CLUSTER_DIR; 'make clean' deletes it)."
        exit 0 ;;
    run) ;;
    *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac

cleanup() {
    stop_all
    "$root/scripts/cluster.sh" destroy >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$root/scripts/cluster.sh" destroy >/dev/null 2>&1 || true

title "baton demo"
say "A throwaway PostgreSQL cluster with the baton extension, two baton-worker daemons, and four"
say "small services in examples/services: inventory (exec), payments (http), packer (stream),"
say "shipping (exec); notifications are an SQL statement (sql handler)."
start_all
say "${D}cluster: $conninfo${N}"

order() { # id card items-json
    printf '{"id": "%s", "card": "%s", "items": %s}' "$1" "$2" "$3"
}
items='[{"sku": "book", "price": 12, "qty": 1}, {"sku": "pen", "price": 2, "qty": 3}, {"sku": "mug", "price": 8, "qty": 1}]'
order_a=$(order A-1001 "4242 4242 4242 4242" "$items")
order_b=$(order B-1002 "4000 0000 0000 0002" '[{"sku": "lamp", "price": 40, "qty": 1}]')
order_c=$(order C-2001 "4242 4242 4242 4242" '[{"sku": "book", "price": 12, "qty": 2}]')
order_d=$(order D-2002 "4000 0000 0000 0002" '[{"sku": "chair", "price": 90, "qty": 1}]')

title "1. orchestration: workflow order_fulfilment"
say "reserve stock -> charge payment and pack items in parallel (one pack task per item) -> ship -> notify"
run_a=$(q -c "SELECT baton.start('order_fulfilment', '$order_a')")
run_b=$(q -c "SELECT baton.start('order_fulfilment', '$order_b')")
say "started run $run_a (order A-1001) and run $run_b (order B-1002, a card that will be declined)"

title "2. choreography: the same flow as events"
say "order.placed -> inventory -> inventory.reserved -> payments -> payment.charged -> shipping -> order.shipped"
say "                                                   payments -> payment.failed  -> inventory releases"
# A correlation id of our own, so we can follow each order through the trace.
corr_c=$(q -c "SELECT gen_random_uuid()")
corr_d=$(q -c "SELECT gen_random_uuid()")
q -c "SELECT baton.publish('order.placed', '{\"order\": $order_c}', key => 'C-2001', correlation_id => '$corr_c')" >/dev/null
q -c "SELECT baton.publish('order.placed', '{\"order\": $order_d}', key => 'D-2002', correlation_id => '$corr_d')" >/dev/null
say "published order.placed for C-2001 and D-2002 (a card that will be declined)"

title "3. live progress"
say "${D}step states: . pending  > running  + succeeded  x failed  ~ compensated  - skipped/cancelled${N}"
status_sql="
SELECT 'run ' || r.id || ' ' || rpad(r.input->>'id', 7) || ' ' || rpad(r.state || COALESCE('/comp:' || r.compensation, ''), 22) ||
       string_agg(s.step || ' ' ||
                  CASE s.state WHEN 'pending' THEN '.' WHEN 'waiting' THEN '.' WHEN 'running' THEN '>'
                               WHEN 'succeeded' THEN '+' WHEN 'failed' THEN 'x' WHEN 'compensating' THEN '~>'
                               WHEN 'compensated' THEN '~' ELSE '-' END ||
                  CASE WHEN s.map_total IS NOT NULL THEN ' ' || COALESCE(s.map_done, 0) || '/' || s.map_total ELSE '' END,
                  '  ' ORDER BY s.ord, s.step)
  FROM baton.runs AS r JOIN baton.run_steps AS s ON s.run_id = r.id
 WHERE r.id IN ($run_a, $run_b) GROUP BY r.id, r.input, r.state, r.compensation
UNION ALL
SELECT 'events ' || rpad(k, 7) || ' ' ||
       (SELECT string_agg(e.topic, ' -> ' ORDER BY e.id) FROM baton.events AS e WHERE e.correlation_id = c::uuid) ||
       COALESCE('  (' || (SELECT count(*) FROM baton.tasks AS t WHERE t.correlation_id = c::uuid AND t.state IN ('pending', 'running'))
                || ' tasks live)', '')
  FROM (VALUES ('C-2001', '$corr_c'), ('D-2002', '$corr_d')) AS x(k, c)"
done_sql="
SELECT (SELECT bool_and(r.state <> 'running' AND COALESCE(r.compensation, 'done') = 'done') FROM baton.runs AS r WHERE r.id IN ($run_a, $run_b))
   AND NOT EXISTS (SELECT 1 FROM baton.tasks AS t WHERE t.correlation_id IN ('$corr_c', '$corr_d') AND t.state IN ('pending', 'running'))
   AND EXISTS (SELECT 1 FROM baton.events WHERE correlation_id = '$corr_c' AND topic = 'order.shipped')
   AND EXISTS (SELECT 1 FROM baton.events WHERE correlation_id = '$corr_d' AND topic = 'payment.failed')"
start=$(date +%s%3N)
last=""
while :; do
    now=$(q -c "$status_sql")
    if [ "$now" != "$last" ]; then
        ms=$(( $(date +%s%3N) - start ))
        printf '%s%4d.%01ds%s\n' "$D" $((ms / 1000)) $((ms % 1000 / 100)) "$N"
        printf '%s\n' "$now" | sed 's/^/  /'
        last=$now
    fi
    [ "$(q -c "$done_sql")" = t ] && break
    if [ $(( $(date +%s%3N) - start )) -gt $((timeout_s * 1000)) ]; then
        say "${R}timed out after ${timeout_s}s; worker logs:${N}"; tail -5 "$state"/worker-*.log; break
    fi
    sleep 0.3
done

title "4. results"
say "${B}runs${N} (baton.runs):"
q -P pager=off -c "SELECT id, input->>'id' AS order, state, compensation, COALESCE(left(output::text, 150) || CASE WHEN length(output::text) > 150 THEN ' ...' ELSE '' END, error) AS output_or_error FROM baton.runs WHERE id IN ($run_a, $run_b) ORDER BY id" -F ' | '
say ""
say "${B}run $run_b step by step${N} (baton.run_steps):"
q -c "SELECT step, state, COALESCE(error, output::text, '') FROM baton.run_steps WHERE run_id = $run_b ORDER BY ord, step" -F ' | '
say ""
say "${B}Mermaid graph of run $run_a${N} (baton.graph($run_a); paste into any Mermaid viewer):"
q -c "SELECT baton.graph($run_a::bigint)"
say ""
say "${B}Mermaid graph of run $run_b${N} (the declined payment and the compensation):"
q -c "SELECT baton.graph($run_b::bigint)"
say ""
say "${B}the choreography of D-2002, traced${N} (baton.trace('$corr_d')):"
q -c "SELECT to_char(at, 'HH24:MI:SS.MS'), kind, id, name, COALESCE(state, ''), COALESCE(cause_kind || ' ' || cause_id, '') FROM baton.trace('$corr_d')" -F ' | '
say ""
say "${B}and as Mermaid${N} (baton.trace_graph):"
q -c "SELECT baton.trace_graph('$corr_d')"
say ""
say "${B}notifications written by the sql handler${N} (demo.notifications):"
q -c "SELECT order_id, message FROM demo.notifications ORDER BY id" -F ' | '

title "5. checks"
fails=0
check() { # description sql-returning-t
    if [ "$(q -c "$2")" = t ]; then say "  ${G}ok${N}   $1"; else say "  ${R}FAIL${N} $1"; fails=$((fails + 1)); fi
}
check "workflow run for A-1001 succeeded, with a notification" \
    "SELECT state = 'succeeded' AND output #>> '{notify,notification}' IS NOT NULL FROM baton.runs WHERE id = $run_a"
check "its pack step fanned out one task per item, outputs in order" \
    "SELECT jsonb_array_length(output) = 3 AND output->0->>'sku' = 'book' FROM baton.run_steps WHERE run_id = $run_a AND step = 'pack'"
check "workflow run for B-1002 failed at charge: card declined" \
    "SELECT r.state = 'failed' AND s.state = 'failed' AND s.error LIKE '%declined%' FROM baton.runs r JOIN baton.run_steps s ON s.run_id = r.id WHERE r.id = $run_b AND s.step = 'charge'"
check "the saga released B-1002's stock (reserve compensated)" \
    "SELECT state = 'compensated' FROM baton.run_steps WHERE run_id = $run_b AND step = 'reserve'"
check "no notification for B-1002" "SELECT NOT EXISTS (SELECT 1 FROM demo.notifications WHERE order_id = 'B-1002')"
check "choreography C-2001: placed -> reserved -> charged -> shipped, and notified" \
    "SELECT array_agg(topic ORDER BY id) = '{order.placed,inventory.reserved,payment.charged,order.shipped}' AND EXISTS (SELECT 1 FROM demo.notifications WHERE order_id = 'C-2001') FROM baton.events WHERE correlation_id = '$corr_c'"
check "choreography D-2002: the failure token made inventory release the reservation" \
    "SELECT EXISTS (SELECT 1 FROM baton.tasks t JOIN baton.events e ON e.id = t.event_id WHERE t.correlation_id = '$corr_d' AND e.topic = 'payment.failed' AND t.state = 'succeeded' AND t.result->>'released' = 'R-D-2002')"
check "D-2002 was never shipped" \
    "SELECT NOT EXISTS (SELECT 1 FROM baton.events WHERE correlation_id = '$corr_d' AND topic = 'order.shipped')"
check "the trace of D-2002 covers events and tasks, causes first" \
    "SELECT count(*) FILTER (WHERE kind = 'event') = 3 AND count(*) FILTER (WHERE kind = 'task') >= 3 FROM baton.trace('$corr_d')"

title "look around yourself"
say "  make up                       # the same cluster, services and workers, left running, and the dashboard"
say "  console/baton --dsn \"\$(scripts/cluster.sh conninfo)\" web     # the dashboard (make up starts it and prints its address)"
say "  console/baton --dsn \"\$(scripts/cluster.sh conninfo)\" status  # the command line: status, tasks, runs, trace ..."
say "  psql \"\$(scripts/cluster.sh conninfo)\""
say "  SELECT * FROM baton.runs;  SELECT * FROM baton.run_steps WHERE run_id = 1;"
say "  SELECT * FROM baton.events;  SELECT * FROM baton.trace('<correlation id>');"
say "  SELECT * FROM baton.queue_stats;  SELECT * FROM baton.workers;"
say "  make down"
if [ "$fails" -gt 0 ]; then
    say "${R}$fails expected outcome(s) did not happen${N}"; exit 1
fi
say "${G}all expected outcomes happened${N}"
