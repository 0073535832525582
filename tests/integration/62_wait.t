#!/bin/bash
# 62_wait.t — wait_run / wait_task block until another session ends the work, without spinning, and stop on cancel.
#
# Both ways a wait can sleep are tested: polling with a growing interval (the
# shared test cluster, not preloaded) and latch wake-ups from the committing
# session (a preloaded cluster of its own).  "Without spinning" is checked by
# counting the sleeps of a ~2 s wait (pg_stat_get_xact_function_calls on the
# private sleep function), never by timing; with baton.wait_recheck at 10
# minutes, a latch wait that returns at all was woken by the commit.
set -uo pipefail
root=${BATON_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cluster="$root/scripts/cluster.sh"
work=$(mktemp -d)
chmod 755 "$work"
db=baton_wait_$$
n=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
like() { n=$((n + 1)); if printf '%s' "$2" | grep -Eq -- "$3"; then echo "ok $n - $1"; else echo "not ok $n - $1"; echo "# got: $2"; echo "# want (regex): $3"; fi; }
q() { psql -X -qtA -v ON_ERROR_STOP=1 -d "$db" "$@"; }
now_ms() { date +%s%3N; }
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null
    dropdb --if-exists "$db" 2>/dev/null
    BATON_CLUSTER_DIR="$root/.cluster-wait" "$cluster" destroy >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

# waiter NAME SQL: runs SQL in the background in a session named NAME, and then
# prints how many times it slept; output in $work/NAME.out (errors included).
waiter() {
    psql -X -qtA -d "$db" -v ON_ERROR_STOP=1 >"$work/$1.out" 2>&1 <<SQL &
SET application_name = '$1';
SET track_functions = 'all';
SET baton.wait_recheck = '10min';
BEGIN;
$2;
SELECT 'sleeps=' || pg_stat_get_xact_function_calls('baton._wait_sleep(integer)'::regprocedure);
COMMIT;
SQL
    echo $!
}
# waited PID: true once the background waiter ended (20 s at most).
waited() {
    local deadline=$(( $(now_ms) + 20000 ))
    while kill -0 "$1" 2>/dev/null; do
        [ "$(now_ms)" -gt "$deadline" ] && return 1
        sleep 0.05
    done
}
# is_waiting NAME: true once the session NAME is inside its wait (10 s at most).
is_waiting() {
    local deadline=$(( $(now_ms) + 10000 ))
    until [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$1' AND query ~ 'wait_(run|task)' AND state = 'active'")" = 1 ]; do
        [ "$(now_ms)" -gt "$deadline" ] && return 1
        sleep 0.05
    done
}
sleeps() { sed -n 's/^sleeps=//p' "$work/$1.out"; }

# Every check of one mode (polling or latch); $1 names it in the test names.
checks() {
    local mode=$1 t w out s
    q -c "SELECT baton.create_queue('wq')" -c "SELECT baton.create_queue('nohist', retention => '0')" \
      -c "SELECT baton.define_workflow('wflow', '{\"steps\": {\"a\": {\"queue\": \"wq\"}}}')" >/dev/null

    # A task ended by another session about 2 s later.
    t=$(q -c "SELECT baton.enqueue('wq', '{\"n\": 1}')")
    w=$(waiter "w1_$mode" "SELECT baton.wait_task($t, '60 seconds')")
    is_waiting "w1_$mode"; ok $? "$mode: the waiter blocks in wait_task"
    sleep 2
    q -c "SELECT baton.complete(id, attempt, '{\"r\": 42}') FROM baton.claim('{wq}', 'other', 1)" >/dev/null
    waited "$w"; ok $? "$mode: the waiter returns after the task is completed elsewhere"
    like "$mode: wait_task returns the task's state and result" "$(cat "$work/w1_$mode.out")" '"state": "succeeded".*"result": \{"r": 42\}'
    s=$(sleeps "w1_$mode")
    if [ "$mode" = latch ]; then
        # baton.wait_recheck is 10 minutes here: only the commit can have woken it.
        [ -n "$s" ] && [ "$s" -le 2 ]; ok $? "latch: a 2 s wait sleeps once or twice, woken by the commit (got ${s:-none})"
    else
        [ -n "$s" ] && [ "$s" -ge 8 ] && [ "$s" -le 40 ]; ok $? "polling: a 2 s wait polls with a growing interval, 8-40 sleeps (got ${s:-none})"
    fi

    # A run, ended by its step's completion in another session.
    r=$(q -c "SELECT baton.start('wflow', '{\"x\": 1}')")
    w=$(waiter "w2_$mode" "SELECT baton.wait_run($r)")
    is_waiting "w2_$mode"
    q -c "SELECT baton.complete(id, attempt, '{\"ok\": true}') FROM baton.claim('{wq}', 'other', 1)" >/dev/null
    waited "$w"; ok $? "$mode: wait_run returns when the run ends"
    like "$mode: wait_run returns the run's state and output" "$(cat "$work/w2_$mode.out")" '"state": "succeeded".*"output": \{"a": \{"ok": true\}\}'

    # A queue without history deletes the task when it succeeds.
    t=$(q -c "SELECT baton.enqueue('nohist')")
    w=$(waiter "w3_$mode" "SELECT baton.wait_task($t)")
    is_waiting "w3_$mode"
    q -c "SELECT baton.complete(id, attempt) FROM baton.claim('{nohist}', 'other', 1)" >/dev/null
    waited "$w"; like "$mode: a task deleted at completion (retention 0) is reported succeeded and deleted" \
        "$(cat "$work/w3_$mode.out")" '"state": "succeeded".*"deleted": true|"deleted": true.*"state": "succeeded"'

    # A rolled-back completion ends nothing: the waiter keeps waiting.
    t=$(q -c "SELECT baton.enqueue('wq')")
    w=$(waiter "w4_$mode" "SELECT baton.wait_task($t, '3 seconds')")
    is_waiting "w4_$mode"
    q -c "BEGIN" -c "SELECT baton.complete(id, attempt) FROM baton.claim('{wq}', 'other', 1)" -c "ROLLBACK" >/dev/null
    waited "$w"
    like "$mode: after a rolled-back completion the wait times out with 55000 naming the state" \
        "$(cat "$work/w4_$mode.out")" "task $t has not ended after 00:00:03 \\(state (pending|running)\\)"

    # Cancellation and statement_timeout end a wait at once.
    w=$(waiter "w5_$mode" "SELECT baton.wait_task($t)")
    is_waiting "w5_$mode"
    q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'w5_$mode'" >/dev/null
    waited "$w"; like "$mode: pg_cancel_backend ends a wait without a timeout" "$(cat "$work/w5_$mode.out")" 'canceling statement due to user request'
    out=$(q -c "SET statement_timeout = '300ms'" -c "SELECT baton.wait_task($t)" 2>&1)
    like "$mode: statement_timeout ends a wait" "$out" 'canceling statement due to statement timeout'

    out=$(q -c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT baton.wait_task($t, '1 second')" 2>&1)
    like "$mode: a wait in REPEATABLE READ is refused (it could never see the end)" "$out" 'needs READ COMMITTED \(this transaction is repeatable read\)'
}

echo "1..22"
createdb -T baton_template "$db" || { echo "Bail out! cannot create a database"; exit 1; }
checks polling

# The same against a preloaded cluster: latch wake-ups.
dropdb "$db"
export BATON_CLUSTER_DIR="$root/.cluster-wait"
"$cluster" destroy >/dev/null 2>&1
{ "$cluster" start --preload && eval "$("$cluster" env)"; } >"$work/cluster.log" 2>&1 || {
    sed 's/^/# /' "$work/cluster.log"; echo "Bail out! cannot start a preloaded cluster"; exit 1; }
eval "$("$cluster" env)"
createdb "$db" && q -c "CREATE EXTENSION baton" >/dev/null || { echo "Bail out! cannot create the database"; exit 1; }
checks latch
