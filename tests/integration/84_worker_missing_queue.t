#!/usr/bin/env python3
# 84_worker_missing_queue.t — a missing queue is that queue's problem: the worker logs it by name and serves the
# others, starts serving it once create_queue makes it (no restart), and --check-config reports it (exit 2) when
# the database is reachable.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, WORKER, wait_until, run

t = Tap()
d = tmpdir("missing")
db = Db("baton_worker_missing")
db.sql("SELECT baton.create_queue('exists_q')")
conf = """[worker]
poll_interval = 300ms
[queue exists_q]
handler = noop
[queue missing_q]
handler = noop
"""
path = os.path.join(d, "w.conf")
with open(path, "w") as f:
    f.write(conf)

rc, out, err = run([WORKER, "--config", path, "--check-config"], env=db.env)
t.is_(rc, 2, "--check-config with a reachable database: exit 2 for a missing queue", out + err)
t.ok(('queue "missing_q" does not exist' in err) and (path + ":5:") in err and "exists_q" not in err,
     "the message names the missing queue and its line, not the present one", err)

w = Worker(db, conf)
i = int(db.sql("SELECT baton.enqueue('exists_q', '{}')"))
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % i) == "succeeded", 30),
     "the task of the present queue is served", w.logtext())
t.ok(wait_until(lambda: 'queue "missing_q" does not exist' in w.logtext(), 10), "the log names the missing queue",
     w.logtext())
t.is_(w.logtext().count('queue "missing_q" does not exist'), 1, "once, not once per claim")

db.sql("SELECT baton.create_queue('missing_q')")
j = int(db.sql("SELECT baton.enqueue('missing_q', '{}')"))
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % j) == "succeeded", 30),
     "created later, the queue is served without a restart", w.logtext())
t.ok('queue "missing_q" exists now' in w.logtext(), "the log says so")

# Dropped while the worker runs: the others go on.
db.sql("SELECT baton.drop_queue('missing_q')")
k = int(db.sql("SELECT baton.enqueue('exists_q', '{}')"))
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % k) == "succeeded", 30),
     "a queue dropped under the worker does not stop the others", w.logtext())
t.ok(w.proc.poll() is None, "the worker keeps running")
t.is_(w.stop(), 0, "clean exit")

db.sql("SELECT baton.create_queue('missing_q')")
rc, out, err = run([WORKER, "--config", path, "--check-config"], env=db.env)
t.ok(rc == 0 and "OK (2 queues)" in out, "--check-config passes once both exist", out + err)
