#!/bin/bash
# 45_drain_pooled.sh — the worker drain of 40_drain.sh through PgBouncer in transaction mode (issue 14).
#
# B_DRAIN_TASKS pre-enqueued noop tasks drained by the largest process count of B_DRAIN_PROCS with
# batch 50, the worker's dsn pointing at a PgBouncer 1.18 (pool_mode = transaction, 127.0.0.1, a
# free port, default_pool_size 8) in front of the section's cluster; the workers run in pooled mode
# (listen = off: no LISTEN, claims not session-bound).  tasks/s = tasks / (last finished_at - first
# started_at), as in 40_drain.sh, and compared with the direct figure of the same run
# (drain.wN.batch50).
source "$BENCH_ROOT/bench/lib.sh"
section_init
worker_section bench
PGBOUNCER=${BENCH_PGBOUNCER:-/usr/sbin/pgbouncer}
[ -x "$PGBOUNCER" ] || fail "$SECTION" "pgbouncer not found at $PGBOUNCER (Debian package pgbouncer: scripts/deps.sh)"

procs=1
for p in $B_DRAIN_PROCS; do procs=$p; done
batch=50

# PgBouncer refuses to run as root: as root it runs as the cluster's owner.
pgb_dir=$dir/pgbouncer
mkdir -p "$pgb_dir"
chmod 777 "$pgb_dir"
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '"%s" ""\n' "$PGUSER" >"$pgb_dir/userlist.txt"
cat >"$pgb_dir/pgbouncer.ini" <<INI
[databases]
* = host=$PGHOST port=$PGPORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $pgb_dir/userlist.txt
pool_mode = transaction
default_pool_size = 8
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
logfile = $BENCH_WORK/logs/pgbouncer.log
pidfile = $pgb_dir/pgbouncer.pid
INI
chmod 777 "$BENCH_WORK/logs"
if [ "$(id -u)" -eq 0 ]; then
    bg setpriv --reuid=postgres --regid=postgres --clear-groups "$PGBOUNCER" "$pgb_dir/pgbouncer.ini" >/dev/null 2>&1
else
    bg "$PGBOUNCER" "$pgb_dir/pgbouncer.ini" >/dev/null 2>&1
fi
pgb_pid=$BG_PID
pooled_dsn="host=127.0.0.1 port=$port dbname=$PGDATABASE user=$PGUSER"
for ((i = 0; i < 100; i++)); do
    psql -X -qtA -d "$pooled_dsn" -c 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.1
done
psql -X -qtA -d "$pooled_dsn" -c 'SELECT 1' >/dev/null 2>&1 || fail "$SECTION" "pgbouncer did not start (logs/pgbouncer.log)"

q -c "SELECT count(*) FROM generate_series(1, $B_DRAIN_TASKS, 10000) AS c,
             LATERAL baton.enqueue_many('bench', (SELECT jsonb_agg(jsonb_build_object('n', i))
                                                   FROM generate_series(c, LEAST(c + 9999, $B_DRAIN_TASKS)) AS i))" >/dev/null
settle
printf '[worker]\nconcurrency = 256\nmax_batch = %s\nlisten = off\n[queue bench]\nhandler = noop\n' "$batch" >"$dir/w.conf"
pids=()
for ((i = 0; i < procs; i++)); do
    bg "$WORKER_BIN" --config "$dir/w.conf" --dsn "$pooled_dsn" >>"$BENCH_WORK/logs/drain-pooled-worker-$i.log" 2>&1
    pids+=("$BG_PID")
done
NOTE=
wait_for "NOT EXISTS (SELECT 1 FROM baton._tasks WHERE queue = 'bench' AND state IN ('pending', 'running'))" \
    "$B_PHASE_TIMEOUT" 0.5 || NOTE="did not drain within $B_PHASE_TIMEOUT s"
for i in "${pids[@]}"; do bg_stop "$i" 10; done
bg_stop "$pgb_pid" 5
read -r done_n secs <<<"$(q -F ' ' -c "SELECT count(*), extract(epoch FROM max(finished_at) - min(started_at))
                                         FROM baton._tasks WHERE queue = 'bench' AND state = 'succeeded'")"
claims_bound=$(q -c "SELECT count(*) FROM baton._tasks WHERE claim_pid IS NOT NULL")
[ "$done_n" = "$B_DRAIN_TASKS" ] || NOTE="${NOTE:+$NOTE; }$done_n of $B_DRAIN_TASKS succeeded"
[ "$claims_bound" = 0 ] || NOTE="${NOTE:+$NOTE; }$claims_bound claims were session-bound"
RATE=$(calc "$done_n / $secs")
log "through PgBouncer: $procs worker(s), batch $batch: $RATE tasks/s"
figure id="drain.pooled.w$procs.batch$batch" \
    name="worker drain through PgBouncer (transaction pooling), $procs process(es), batch $batch" \
    value:n="$RATE" unit=tasks/s bound="drain.w$procs.batch$batch" \
    note="${NOTE:-ratio = pooled / direct drain of the same run}"
[ -z "$NOTE" ] || fail "$SECTION" "$NOTE"
part_ok drain_pooled
