#!/usr/bin/env python3
# 44_worker_drain.t — SIGTERM drains (short tasks finish, long ones are released with the attempt refunded),
# a second signal exits fast, SIGHUP reloads (and keeps the old config when the new one is invalid).
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script, pid_alive

t = Tap()
db = Db("baton_worker_drain")
d = tmpdir("drain")
svc = write_script(os.path.join(d, "svc.sh"), """#!/bin/bash
input=$(cat)
echo $$ >> %s/pids
case "$input" in
  *long*) sleep 60 ;;
  *short*) sleep 0.5 ;;
esac
echo '"done"'
""" % d)
db.sql("SELECT baton.create_queue('a'); SELECT baton.create_queue('b')")
conf = """[worker]
grace = 1500ms
kill_grace = 200ms
poll_interval = 200ms
[queue a]
handler = exec
command = %s
timeout = 120s
""" % svc
short = [int(db.sql("SELECT baton.enqueue('a', '\"short\"')")) for _ in range(3)]
long_ = [int(db.sql("SELECT baton.enqueue('a', '\"long\"')")) for _ in range(2)]
w = Worker(db, conf)
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE state = 'running'") == "5", 10),
     "all five tasks run", w.logtext())
w.signal(signal.SIGTERM)
db.sql("SELECT baton.enqueue('a', '\"short\"')")   # arrives during the drain: must not be claimed
rc = w.proc.wait(30)
t.is_(rc, 0, "the drained worker exits 0", w.logtext())
for i in short:
    t.is_(db.sql("SELECT state FROM baton.tasks WHERE id = %d" % i), "succeeded", "short task %d finished during the grace" % i)
for i in long_:
    t.is_(db.sql("SELECT state || ' ' || attempt || ' ' || max_attempts FROM baton.tasks WHERE id = %d" % i), "pending 1 6",
          "long task %d released: pending again, its attempt refunded (max_attempts 5 -> 6)" % i)
t.is_(db.sql("SELECT count(*) FROM baton.tasks WHERE state = 'pending' AND attempt = 0"), "1",
      "no claims after SIGTERM")
pids = [int(x) for x in open(os.path.join(d, "pids")).read().split()]
t.ok(wait_until(lambda: not any(pid_alive(p) for p in pids), 5), "no child outlives the worker")

# A second SIGTERM skips the grace.
os.remove(os.path.join(d, "pids"))
w = Worker(db, conf.replace("grace = 1500ms", "grace = 60s"))
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE state = 'running'") == "2", 10),
     "the released long tasks run again")
db.sql("SELECT 1")
w.signal(signal.SIGTERM)
time.sleep(0.3)
w.signal(signal.SIGTERM)
start = time.time()
rc = w.proc.wait(30)
t.ok(rc == 0 and time.time() - start < 20, "a second SIGTERM exits without waiting for the 60 s grace", w.logtext())
t.is_(db.sql("SELECT count(*) FROM baton.tasks WHERE state = 'pending' AND attempt = 2 AND max_attempts = 7"), "2",
      "and releases the tasks in flight")

# SIGHUP: add a queue; an invalid file is refused and the old config kept.
for i in long_:
    db.sql("SELECT baton.cancel(%d)" % i)
b_ids = [int(db.sql("SELECT baton.enqueue('b', '\"short\"')")) for _ in range(2)]
quick = conf.replace("grace = 1500ms", "grace = 5s")
w = Worker(db, quick)
time.sleep(1)
t.is_(db.sql("SELECT count(*) FROM baton.tasks WHERE queue = 'b' AND state = 'pending'"), "2", "queue b is not served yet")
w.rewrite(quick + "[queue b]\nhandler = noop\n")
w.signal(signal.SIGHUP)
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE queue = 'b' AND state = 'succeeded'") == "2", 10),
     "after SIGHUP the new queue b is served", w.logtext())
t.ok(wait_until(lambda: db.sql("SELECT queues::text FROM baton.workers") in ("{a,b}", "{b,a}"), 5),
     "the registration lists the new queue", db.sql("SELECT queues::text FROM baton.workers"))
w.rewrite(quick + "[queue b]\nhandler = noop\nbogus = 1\n")
w.signal(signal.SIGHUP)
t.ok(wait_until(lambda: "keeping the old configuration" in w.logtext(), 5), "an invalid file is refused on SIGHUP", w.logtext())
t.ok(":11: unknown key \"bogus\"" in w.logtext(), "the log says why, with file:line")
b2 = int(db.sql("SELECT baton.enqueue('b', '\"short\"')"))
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % b2) == "succeeded", 10),
     "the worker still runs with the old config")
t.is_(w.stop(), 0, "clean exit")
