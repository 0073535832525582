#!/bin/bash
# 72_wakeup_deferred.t — with baton preloaded, wake-ups are sent by the scheduler worker after commit
# (never after a rollback), coalesced across commits, for every path that makes a task due; a database
# without a scheduler worker keeps the producer's own NOTIFY.
#
# Runs its own preloaded throwaway cluster.  A LISTENing psql session reports who sent each
# notification ("received from server process with PID N"): the scheduler worker's pid proves the
# producer did not NOTIFY.  Every wait polls with a generous deadline; nothing is timed.
set -uo pipefail

root=${BATON_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export BATON_CLUSTER_DIR="$root/.cluster-wakeup"
cluster="$root/scripts/cluster.sh"
tmp=$(mktemp -d /tmp/baton-wakeup.XXXXXX)
chmod 755 "$tmp"
n=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
q() { psql -X -qtA -v ON_ERROR_STOP=1 "$@"; }
now_ms() { date +%s%3N; }
pids=()
stopped=
cleanup() {
    [ -n "$stopped" ] && kill -CONT "$stopped" 2>/dev/null
    exec 3>&- 4>&- 2>/dev/null
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    "$cluster" destroy >/dev/null 2>&1
    rm -f "$BATON_CLUSTER_DIR.log"
    rm -rf "$tmp"
}
trap cleanup EXIT

poll() {
    local deadline=$(( $(now_ms) + $1 * 1000 ))
    until [ "$(q -c "$2" 2>/dev/null)" = t ]; do
        [ "$(now_ms)" -gt "$deadline" ] && return 1
        sleep 0.1
    done
}

echo "1..11"
"$cluster" destroy >/dev/null 2>&1
{ "$cluster" start && BATON_EXTRA_CONF="baton.tick_interval = 200
max_prepared_transactions = 2" "$cluster" restart --preload; } >"$BATON_CLUSTER_DIR.log" 2>&1 || {
    sed 's/^/# /' "$BATON_CLUSTER_DIR.log"; echo "Bail out! cannot start a preloaded cluster"; exit 1; }
eval "$("$cluster" env)"
poll 30 "SELECT baton.scheduler_running()" || { echo "Bail out! no scheduler worker"; exit 1; }
sched=$(q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'baton scheduler' AND datname = current_database()")

# The listener: a psql session fed through a fifo; notifications are printed after each command.
mkfifo "$tmp/listen.in"
psql -X -q <"$tmp/listen.in" >"$tmp/listen.out" 2>&1 &
pids+=($!)
exec 3>"$tmp/listen.in"
echo "LISTEN baton_tasks;" >&3
# heard QUEUE: how many wake-ups of QUEUE the listener got so far, from the scheduler worker / from anyone.
heard_from() { echo "SELECT 1 \\g /dev/null" >&3; sleep 0.05; grep -c "payload \"$1\" received from server process with PID $2\." "$tmp/listen.out"; }
heard_any() { grep -c "payload \"$1\" received from server process" "$tmp/listen.out"; }
# wait_heard QUEUE: true once the scheduler worker's wake-up of QUEUE arrived (30 s at most).
wait_heard() {
    local deadline=$(( $(now_ms) + 30000 ))
    until [ "$(heard_from "$1" "$sched")" -ge 1 ]; do
        [ "$(now_ms)" -gt "$deadline" ] && return 1
        sleep 0.1
    done
}

for queue in q_enq q_late q_rb q_marker q_coal q_marker2 q_many q_pub q_wf q_delay q_retry q_idle; do
    q -c "SELECT baton.create_queue('$queue', backoff_base => '0')" >/dev/null
done

# 1. A committed enqueue: heard, from the scheduler worker, not from the producer.
q -c "SELECT baton.enqueue('q_enq')" >/dev/null
wait_heard q_enq && [ "$(heard_any q_enq)" = 1 ]
ok $? "a committed enqueue is heard once, sent by the scheduler worker (pid $sched)"

# 2. Not before the commit: a producer holds its transaction open until we release a lock.
mkfifo "$tmp/hold.in"
psql -X -q <"$tmp/hold.in" >/dev/null 2>&1 &
pids+=($!)
exec 4>"$tmp/hold.in"
echo "SELECT pg_advisory_lock(17);" >&4
poll 20 "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 17 AND granted"
psql -X -q -c "BEGIN" -c "SELECT baton.enqueue('q_late')" -c "SELECT pg_advisory_lock(17)" -c "COMMIT" >/dev/null 2>&1 &
pids+=($!)
poll 20 "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 17 AND NOT granted"
q -c "SELECT baton.enqueue('q_marker')" >/dev/null
wait_heard q_marker && [ "$(heard_any q_late)" = 0 ]
ok $? "an enqueue whose transaction is still open is not heard (a later commit's wake-up is)"
echo "SELECT pg_advisory_unlock(17);" >&4
wait_heard q_late
ok $? "it is heard once that transaction commits"

# 3. A rollback wakes nobody.
q -c "BEGIN" -c "SELECT baton.enqueue('q_rb')" -c "SELECT baton.enqueue_many('q_rb', '[1, 2]')" -c "ROLLBACK" >/dev/null
q -c "SELECT baton.enqueue('q_marker2')" >/dev/null
wait_heard q_marker2 && [ "$(heard_any q_rb)" = 0 ]
ok $? "a rolled-back enqueue is never heard"

# 4. Coalescing: 20 commits while the scheduler worker cannot run give one notification.
kill -STOP "$sched"; stopped=$sched
for i in $(seq 1 20); do echo "SELECT baton.enqueue('q_coal');"; done | timeout 60 psql -X -qtA >/dev/null
kill -CONT "$sched"; stopped=
wait_heard q_coal && sleep 0.5 && [ "$(heard_from q_coal "$sched")" = 1 ] && [ "$(heard_any q_coal)" = 1 ]
ok $? "20 committed enqueues of one queue while the worker was busy: one notification"

# 5. Every path that makes a task due goes through the deferred wake-up.
q -c "SELECT baton.enqueue_many('q_many', '[1, 2, 3]')" >/dev/null
q -c "SELECT baton.subscribe('s_pub', 'topic.pub', queue => 'q_pub')" -c "SELECT baton.publish('topic.pub', '{}')" >/dev/null
q -c "SELECT baton.define_workflow('wf', '{\"steps\": {\"a\": {\"queue\": \"q_wf\"}}}')" -c "SELECT baton.start('wf')" >/dev/null
q -c "SELECT baton.enqueue('q_delay', delay => '1 second')" >/dev/null
q -c "SELECT baton.enqueue('q_retry')" \
  -c "SELECT baton.fail(c.id, c.attempt, 'again') FROM baton.claim('{q_retry}', 'w', 1) AS c" >/dev/null
all=0
for queue in q_many q_pub q_wf q_delay q_retry; do
    wait_heard "$queue" || { all=1; echo "# no wake-up of $queue from the scheduler worker"; }
done
ok $all "enqueue_many, publish fan-out, workflow start, promotion by tick and a retry are heard from the scheduler worker"
[ "$(grep 'baton_tasks' "$tmp/listen.out" | grep -vc "PID $sched\.")" = 0 ]
ok $? "no wake-up at all came from a producer's own NOTIFY"

# 6. A transaction touching more queues than it remembers wakes every queue of the database.
q -c "SELECT baton.create_queue('many_' || i) FROM generate_series(1, 40) AS i" >/dev/null
q -c "SELECT baton.enqueue('many_' || i) FROM generate_series(1, 40) AS i" >/dev/null
wait_heard many_40 && wait_heard many_1 && wait_heard q_idle || { tail -5 "$tmp/listen.out" | sed "s/^/# /"; false; }
ok $? "40 queues in one transaction: every queue is woken, even one it did not touch"

# 7. PREPARE TRANSACTION after a deferred wake-up is refused, as after a NOTIFY.
out=$(psql -X -q -c "BEGIN" -c "SELECT baton.enqueue('q_enq')" -c "PREPARE TRANSACTION 'p1'" 2>&1)
printf '%s' "$out" | grep -q 'cannot PREPARE a transaction that made a task due' &&
    [ "$(q -c "SELECT count(*) FROM pg_prepared_xacts")" = 0 ]
ok $? "PREPARE TRANSACTION after an enqueue is refused"

# 8. A database the scheduler does not serve: the producer's own NOTIFY, at commit.
createdb other && q -d other -c "CREATE EXTENSION baton" -c "SELECT baton.create_queue('oq')" >/dev/null
out=$(psql -X -qtA -d other -c "LISTEN baton_tasks" -c "SELECT baton.enqueue('oq')" -c "SELECT 'me=' || pg_backend_pid()" 2>&1)
me=$(printf '%s\n' "$out" | sed -n 's/^me=\([0-9]*\)$/\1/p')
[ -n "$me" ] && printf '%s' "$out" | grep -q "payload \"oq\" received from server process with PID $me\."
ok $? "a database without a scheduler worker: the producer notifies itself, as before"

# 9. Restarted worker: wake-ups keep coming from the new one.
kill -TERM "$sched"
poll 40 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'baton scheduler' AND datname = current_database() AND pid <> $sched"
sched=$(q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'baton scheduler' AND datname = current_database()")
q -c "SELECT baton.enqueue('q_enq')" >/dev/null
wait_heard q_enq
ok $? "after the scheduler worker restarts, the new one ($sched) sends the wake-ups"
