#!/usr/bin/env python3
# 53_worker_stale.t — a worker frozen (SIGSTOP) past its task's lease: tick() expires the lease, a second worker
# runs the task as attempt 2 and completes it; the frozen worker, resumed (SIGCONT), reports attempt 1's outcome,
# which fencing rejects: the task keeps attempt 2's result and the first worker logs it and keeps running.
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script, pid_alive

t = Tap()
db = Db("baton_worker_stale")
d = tmpdir("stale")
pidfile = os.path.join(d, "pids")
# Attempt 1 takes 3 s (three leases); later attempts are quick. Each attempt's result names it.
svc = write_script(os.path.join(d, "svc.py"), r'''#!/usr/bin/env python3
import json, os, sys, time
task = json.load(sys.stdin)
with open(%r, "a") as f:
    f.write("%%d %%d\n" %% (task["attempt"], os.getpid()))
time.sleep(3 if task["attempt"] == 1 else 0.1)
print(json.dumps({"attempt": task["attempt"]}))
''' % pidfile)
db.sql("SELECT baton.create_queue('c', lease => '1 second', max_attempts => 3, backoff_base => '0', backoff_cap => '0')")
conf = """[worker]
id = %s
tick = %s
tick_interval = 100ms
poll_interval = 100ms
[queue c]
handler = exec
command = """ + svc + """
timeout = 20s
"""
tid = int(db.sql("SELECT baton.enqueue('c')"))
a = Worker(db, conf % ("frozen", "off"))


def row():
    return db.sql("SELECT state || ' ' || attempt || ' ' || coalesce(worker, '-') FROM baton.tasks WHERE id = %d" % tid)


def children(attempt):
    if not os.path.exists(pidfile):
        return []
    return [int(p) for a_, p in (l.split() for l in open(pidfile).read().splitlines()) if int(a_) == attempt]


t.ok(wait_until(lambda: row() == "running 1 frozen" and children(1), 10), "worker A runs attempt 1", a.logtext())
a.signal(signal.SIGSTOP)   # its child sleeps on; A sends no heartbeat and no report while stopped
b = Worker(db, conf % ("rescuer", "on"))
t.ok(wait_until(lambda: row() == "succeeded 2 rescuer", 15),
     "tick() expired A's lease and worker B completed the task as attempt 2", row() + "\n" + b.logtext())
t.ok(wait_until(lambda: not pid_alive(children(1)[0]), 10), "A's child finished attempt 1 while A was stopped")
a.signal(signal.SIGCONT)
t.ok(wait_until(lambda: "task %d attempt 1: report rejected" % tid in a.logtext(), 10),
     "A, resumed, reports attempt 1 and logs that the report was rejected", a.logtext())
t.is_(db.sql("SELECT state || ' ' || attempt || ' ' || worker || ' ' || result::text FROM baton.tasks WHERE id = %d" % tid),
      'succeeded 2 rescuer {"attempt": 2}', "the task keeps attempt 2's result")
t.ok(a.proc.poll() is None, "A keeps running")
t.is_(b.stop(), 0, "B exits cleanly")
nid = int(db.sql("SELECT baton.enqueue('c', max_attempts => 1)"))
t.ok(wait_until(lambda: db.sql("SELECT state || ' ' || worker FROM baton.tasks WHERE id = %d" % nid) == "succeeded frozen", 15),
     "and A still runs new tasks", a.logtext())
t.is_(a.stop(), 0, "A exits cleanly")
