#!/usr/bin/env python3
# 54_worker_drain_enqueue.t — SIGTERM while a producer keeps enqueueing: after the drain begins the worker claims
# nothing, its tasks in flight finish, it exits 0 well within the grace, and none of its tasks is left running.
import datetime
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script

t = Tap()
db = Db("baton_worker_drain_enqueue")
d = tmpdir("drainenq")
svc = write_script(os.path.join(d, "svc.sh"), "#!/bin/bash\ncat >/dev/null\nsleep 0.3\necho '\"done\"'\n")
db.sql("SELECT baton.create_queue('g')")
w = Worker(db, """[worker]
id = drainer
concurrency = 4
grace = 30s
poll_interval = 100ms
[queue g]
handler = exec
command = %s
timeout = 20s
""" % svc)

# The producer: one psql session (autocommit) fed an enqueue every 5 ms until we close its stdin.
prod = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null"], env=db.env,
                        stdin=subprocess.PIPE, text=True)
stop = threading.Event()


def produce():
    while not stop.is_set():
        prod.stdin.write("SELECT baton.enqueue('g');\n")
        prod.stdin.flush()
        time.sleep(0.005)


th = threading.Thread(target=produce, daemon=True)
th.start()


def count(where):
    return int(db.sql("SELECT count(*) FROM baton.tasks WHERE queue = 'g' AND " + where))


t.ok(wait_until(lambda: count("worker = 'drainer' AND state = 'succeeded'") >= 8 and count("state = 'running'") == 4, 20),
     "the worker runs tasks while the producer enqueues", w.logtext())
w.signal(signal.SIGTERM)
try:
    rc = w.proc.wait(30)   # the grace: tasks in flight take 0.3 s, so a clean drain ends long before it
except subprocess.TimeoutExpired:
    rc = "still running after the grace"
n_after = count("true")
time.sleep(0.3)
t.ok(count("true") > n_after, "the producer kept enqueueing throughout")
stop.set()
th.join()
prod.stdin.close()
prod.wait()
t.is_(rc, 0, "the worker exits 0 within the grace", w.logtext())

# When the drain began, by the worker's own clock (same host as the server), plus a margin: a claim
# sent just before the signal may be read by a busy server a little later, and its started_at is the
# server's time of reading. A worker that kept claiming would claim again as soon as its 0.3 s tasks
# free their slots, well after the margin, so 200 ms still catches it.
log = w.logtext()
line = [l for l in log.splitlines() if "draining: no new claims" in l]
t.is_(len(line), 1, "the worker logged the start of the drain", log)
drain = datetime.datetime.strptime(line[0].split()[0], "%Y-%m-%dT%H:%M:%S.%fZ") + datetime.timedelta(milliseconds=200)
drain_s = drain.strftime("%Y-%m-%d %H:%M:%S.%f+00")
late = db.sql("SELECT count(*) || ' ' || coalesce(string_agg(id::text || '@' || started_at::text, ', '), '') "
              "FROM baton._tasks WHERE worker = 'drainer' AND started_at > '%s'" % drain_s)
t.is_(late.split()[0], "0", "no task claimed by the worker after the drain began (%s)" % drain_s, late)
t.is_(count("state = 'running'"), 0, "none of its tasks is left running")
t.is_(count("max_attempts <> 5 OR (state = 'pending' AND attempt > 0)"), 0,
      "the tasks in flight finished: none had to be released at the end of the grace")
t.ok(count("state = 'pending' AND created_at > '%s'" % drain_s) > 0, "tasks enqueued during the drain wait for another worker")
t.is_(db.sql("SELECT count(*) FROM baton.workers"), "0", "the worker unregistered")
