#!/usr/bin/env python3
# 58_worker_idle_cpu.t — while a statement is in flight, due timers must not make the event loop spin.
# A claim from a concurrency-limited queue waits for the queue row, which another
# session holds locked for a few seconds. Meanwhile the worker's tick, registry and
# poll timers fall due; a loop that kept arming them would call poll(2) with a zero
# timeout over and over and burn a core. The worker's CPU time over that wait must stay
# near zero, and the task must run once the lock is gone.
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import Tap, Db, Worker, wait_until


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().split(")")[-1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


t = Tap()
db = Db("baton_worker_idle_cpu")
db.sql("SELECT baton.create_queue('slow', concurrency => 1); SELECT baton.enqueue('slow')")
holder = subprocess.Popen(["psql", "-X", "-q", "-c",
                           "BEGIN; SELECT name FROM baton._queues WHERE name = 'slow' FOR UPDATE; "
                           "SELECT pg_sleep(4); COMMIT;"],
                          env=db.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
held = wait_until(lambda: db.sql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                                 "WHERE a.query LIKE '%pg_sleep(4)%' AND l.locktype = 'transactionid'") != "0", 10)
t.ok(held, "another session holds the queue row")
w = Worker(db, """[worker]
concurrency = 4
tick = on
tick_interval = 100ms
poll_interval = 100ms
[queue slow]
handler = noop
""")
blocked = wait_until(lambda: db.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                    "AND query LIKE '%baton.claim%'") != "0", 10)
t.ok(blocked, "the worker's claim waits for the lock")
before = cpu_seconds(w.proc.pid)
time.sleep(2)
used = cpu_seconds(w.proc.pid) - before
t.ok(used < 0.5, "the worker stays idle while its claim waits (%.2f s of CPU in 2 s)" % used)
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks") == "succeeded", 20),
     "the task runs once the lock is released")
holder.wait()
t.is_(w.stop(), 0, "clean exit")
