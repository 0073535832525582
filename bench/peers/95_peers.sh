#!/bin/bash
# 95_peers.sh — baton against graphile-worker and pg-boss on the same cluster, interleaved (make bench-peers).
#
# The peers are installed from npm, pinned (PEER_VERSIONS), into a scratch directory outside the
# repository (BENCH_PEERS_DIR, default $BENCH_TMP or /tmp /baton-bench-peers-<versions>, reused by
# later runs) and driven by bench/peers/peer.mjs in their documented best configurations.
# Two benchmarks, each run for baton, then graphile-worker, then pg-boss, on one preloaded cluster:
#   drain   B_PEER_DRAIN no-op jobs enqueued beforehand, one consumer process; jobs/s from the first
#           job started to the last done (baton: 1 baton-worker process, history kept, the times read
#           from the tasks; peers: timed in the consumer process).  B_PEER_ROUNDS rounds, best kept.
#   steady  B_CLIENTS producers, one job per transaction, paced (baton: pgbench --rate; peers: node
#           with one connection each), one consumer process; the offered rate steps through
#           B_PEER_RATES (B_PEER_STEP_S s each) until the producers cannot offer it or the backlog
#           grows by more than 0.1 s of it; the highest step passed gives the sustained rate.
# Ratios: baton / graphile-worker (targets: at least 3) and baton / pg-boss.
source "$BENCH_ROOT/bench/lib.sh"
section_init
PEER_VERSIONS="graphile-worker@0.18.0 pg-boss@12.38.0"

command -v node >/dev/null && command -v npm >/dev/null || fail peers "node and npm are needed (node 20 or later)"
why=$(worker_built) || fail peers "$why"
PEERS_DIR=${BENCH_PEERS_DIR:-${BENCH_TMP:-/tmp}/baton-bench-peers-$(echo "$PEER_VERSIONS" | tr ' @/' '_--')}
export PEERS_DIR
if [ ! -f "$PEERS_DIR/.installed" ] || [ "$(cat "$PEERS_DIR/.installed")" != "$PEER_VERSIONS" ]; then
    log "installing $PEER_VERSIONS into $PEERS_DIR"
    mkdir -p "$PEERS_DIR"
    echo '{"private": true, "name": "baton-bench-peers", "version": "0.0.0"}' >"$PEERS_DIR/package.json"
    # shellcheck disable=SC2086
    (cd "$PEERS_DIR" && timeout 900 npm install --no-audit --no-fund --save-exact $PEER_VERSIONS) \
        >"$BENCH_WORK/logs/peers-npm.log" 2>&1 || fail peers "npm install $PEER_VERSIONS failed: $(tail -1 "$BENCH_WORK/logs/peers-npm.log")"
    echo "$PEER_VERSIONS" >"$PEERS_DIR/.installed"
fi
PEER=$BENCH_ROOT/bench/peers/peer.mjs

cluster_up "track_commit_timestamp = on" --preload || exit 1
why=$(worker_works) || fail peers "$why"
dir=$BENCH_WORK/peers
mkdir -p "$dir"
for p in gw boss; do
    (cd "$PEERS_DIR" && timeout 300 node "$PEER" $p setup) >>"$BENCH_WORK/logs/peers-$p.log" 2>&1 \
        || fail "$p" "setup failed: $(tail -1 "$BENCH_WORK/logs/peers-$p.log")"
done
q -c "SELECT baton.create_queue('peer_drain')" -c "SELECT baton.create_queue('peer_steady')" >/dev/null || exit 1
echo "SELECT baton.enqueue('peer_steady', '{\"n\": 1}');" >"$dir/enqueue.sql"
printf '[worker]\nconcurrency = 1000\nmax_batch = 1000\n[queue peer_drain]\nhandler = noop\n' >"$dir/drain.conf"
printf '[worker]\nconcurrency = 256\n[queue peer_steady]\nhandler = noop\n' >"$dir/steady.conf"

# drain SYSTEM: sets RATE (jobs/s).
drain() {
    local out
    if [ "$1" = baton ]; then
        q -c "DELETE FROM baton._tasks WHERE queue = 'peer_drain'" >/dev/null
        q -c "SELECT count(*) FROM generate_series(1, $B_PEER_DRAIN, 10000) AS c,
                     LATERAL baton.enqueue_many('peer_drain', (SELECT jsonb_agg(jsonb_build_object('n', i))
                                                   FROM generate_series(c, LEAST(c + 9999, $B_PEER_DRAIN)) AS i))" >/dev/null
        settle
        start_worker "$dir/drain.conf" "$BENCH_WORK/logs/peers-baton-drain.log"
        wait_for "NOT EXISTS (SELECT 1 FROM baton._tasks WHERE queue = 'peer_drain' AND state <> 'succeeded')" "$B_PHASE_TIMEOUT" 0.2 \
            || fail baton "baton-worker did not drain $B_PEER_DRAIN tasks in $B_PHASE_TIMEOUT s"
        bg_stop "$WORKER_PID" 10
        RATE=$(q -c "SELECT count(*) / extract(epoch FROM max(finished_at) - min(started_at))
                       FROM baton._tasks WHERE queue = 'peer_drain'")
    else
        settle
        out=$(cd "$PEERS_DIR" && timeout "$B_PHASE_TIMEOUT" node "$PEER" "$1" drain "$B_PEER_DRAIN" 2>>"$BENCH_WORK/logs/peers-$1.log") \
            || fail "$1" "drain failed: $(tail -1 "$BENCH_WORK/logs/peers-$1.log")"
        RATE=$("$PYTHON" -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["jobs"] / d["seconds"])' "$out")
    fi
}

backlog() {
    case $1 in
        baton) q -c "SELECT count(*) FROM baton._tasks WHERE queue = 'peer_steady' AND state IN ('pending', 'running')" ;;
        gw) q -c "SELECT count(*) FROM graphile_worker._private_jobs" ;;
        boss) q -c "SELECT count(*) FROM pgboss.job WHERE name = 'noop' AND state IN ('created', 'retry', 'active')" ;;
    esac
}

# offer SYSTEM RATE: producers at RATE for B_PEER_STEP_S; sets OK (kept up and bounded), DONE_RATE, WHY.
offer() {
    local sys=$1 rate=$2 b0 b1 sent took out
    b0=$(backlog "$sys")
    if [ "$sys" = baton ]; then
        run_pgbench "peers-steady-$rate" -M prepared -c "$B_CLIENTS" -j 2 -T "$B_PEER_STEP_S" --rate "$rate" -f "$dir/enqueue.sql" \
            || fail baton "pgbench failed"
        sent=$PGB_TX took=$(calc "$PGB_TX / $PGB_TPS")
    else
        out=$(cd "$PEERS_DIR" && timeout "$B_PHASE_TIMEOUT" node "$PEER" "$sys" produce "$rate" "$B_PEER_STEP_S" "$B_CLIENTS" \
              2>>"$BENCH_WORK/logs/peers-$sys.log") || fail "$sys" "producer failed: $(tail -1 "$BENCH_WORK/logs/peers-$sys.log")"
        read -r sent took <<<"$("$PYTHON" -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["sent"], d["seconds"])' "$out")"
    fi
    b1=$(backlog "$sys")
    # Per second of the producers' own run: node's start-up (longer than pgbench's) is not counted.
    DONE_RATE=$(calc "($sent - ($b1 - $b0)) / $took")
    OK=1 WHY=
    # Offered: jobs sent per second of the producers' own run (their start-up excluded).
    if ! is_true "$sent / $took >= 0.9 * $rate - 3 * sqrt($rate / $B_PEER_STEP_S)"; then
        OK=0 WHY="the producers could not offer $rate jobs/s"
    elif [ $((b1 - b0)) -gt "$(calc "$rate * 0.1 + 50" | cut -d. -f1)" ]; then
        OK=0 WHY="the backlog grew at $rate jobs/s"
    fi
}

# steady SYSTEM: sets SUSTAINED (jobs/s) and STOPPED.
steady() {
    local sys=$1 rate pid
    if [ "$sys" = baton ]; then
        start_worker "$dir/steady.conf" "$BENCH_WORK/logs/peers-baton-steady.log"; pid=$WORKER_PID
    else
        bg bash -c "cd '$PEERS_DIR' && exec node '$PEER' $sys consume" 2>>"$BENCH_WORK/logs/peers-$sys.log"; pid=$BG_PID
    fi
    sleep 2
    SUSTAINED= STOPPED="every offered rate was sustained"
    for rate in $B_PEER_RATES; do
        offer "$sys" "$rate"
        log "$sys: offered $rate -> $DONE_RATE done/s${WHY:+ ($WHY)}"
        [ "$OK" = 1 ] || { STOPPED=$WHY; break; }
        SUSTAINED=$DONE_RATE
        local waited=0
        while [ "$(backlog "$sys")" -gt 0 ] && [ $waited -lt 300 ]; do sleep 0.2; waited=$((waited + 1)); done
    done
    bg_stop "$pid" 15
    [ -n "$SUSTAINED" ] || SUSTAINED=0
}

declare -A best
for sys in baton gw boss; do best[$sys]=0; done
for ((round = 1; round <= B_PEER_ROUNDS; round++)); do
    for sys in baton gw boss; do
        log "drain round $round: $sys, $B_PEER_DRAIN jobs"
        drain "$sys"
        log "drain round $round: $sys $RATE jobs/s"
        is_true "$RATE > ${best[$sys]}" && best[$sys]=$RATE
    done
done
figure id=peers.gw.drain name="graphile-worker 0.18.0 drain, $B_PEER_DRAIN no-op jobs, 1 process (concurrency 50, local queue 200, batched completions)" \
    value:n="${best[gw]}" unit=jobs/s note="best of $B_PEER_ROUNDS"
figure id=peers.boss.drain name="pg-boss 12.38.0 drain, 1 process (batch 50, local concurrency 2, burst while batches are full)" \
    value:n="${best[boss]}" unit=jobs/s note="best of $B_PEER_ROUNDS"
figure id=peers.baton.drain name="baton drain, 1 baton-worker process, history kept: vs graphile-worker" \
    value:n="${best[baton]}" unit=jobs/s bound=peers.gw.drain target=">=3" target_on=ratio note="best of $B_PEER_ROUNDS"
figure id=peers.baton.drain_vs_boss name="baton drain vs pg-boss" value:n="${best[baton]}" unit=jobs/s bound=peers.boss.drain

for sys in baton gw boss; do
    log "steady: $sys"
    steady "$sys"
    eval "st_$sys=\$SUSTAINED stop_$sys=\"\$STOPPED\""
done
# shellcheck disable=SC2154
{
figure id=peers.gw.steady name="graphile-worker steady state, $B_CLIENTS producers (1 job per transaction), highest sustained rate" \
    value:n="$st_gw" unit=jobs/s note="stopped: $stop_gw"
figure id=peers.boss.steady name="pg-boss steady state, highest sustained rate" value:n="$st_boss" unit=jobs/s note="stopped: $stop_boss"
figure id=peers.baton.steady name="baton steady state (preloaded), highest sustained rate: vs graphile-worker" \
    value:n="$st_baton" unit=jobs/s bound=peers.gw.steady target=">=3" target_on=ratio note="stopped: $stop_baton"
figure id=peers.baton.steady_vs_boss name="baton steady state vs pg-boss" value:n="$st_baton" unit=jobs/s bound=peers.boss.steady
}
part_ok peers
