#!/usr/bin/env python3
# 55_worker_kill_count.t — kill -9 of a worker with many tasks in flight, counted: a second worker finishes them,
# every task reaches a terminal state (lost = 0) and the re-runs (ids twice in the effect ledger) are at most the
# tasks the dead worker held at the kill.
import collections
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script

N = 200
t = Tap()
db = Db("baton_worker_kill_count")
d = tmpdir("killcount")
ledger = os.path.join(d, "ledger")
# The task's effect is one line in the ledger (O_APPEND: concurrent appends do not mix), then success.
svc = write_script(os.path.join(d, "svc.sh"), r"""#!/bin/bash
input=$(cat)
id=$(sed -E 's/^\{"id": ?([0-9]+).*/\1/' <<< "$input")
sleep 0.1
echo "$id" >> %s
echo '"done"'
""" % ledger)
db.sql("SELECT baton.create_queue('k', lease => '10 minutes', backoff_base => '0', backoff_cap => '0')")
db.sql("SELECT count(*) FROM baton.enqueue_many('k', (SELECT jsonb_agg(i) FROM generate_series(1, %d) AS i))" % N)
conf = """[worker]
id = %s
tick = %s
tick_interval = 200ms
poll_interval = 100ms
concurrency = 16
[queue k]
handler = exec
command = """ + svc + """
timeout = 60s
"""
a = Worker(db, conf % ("victim", "off"))


def count(where):
    return int(db.sql("SELECT count(*) FROM baton.tasks WHERE " + where))


t.ok(wait_until(lambda: count("state = 'succeeded'") >= N // 3 and count("state = 'running'") > 0, 120),
     "worker A is part-way through the tasks", a.logtext())
a.proc.send_signal(signal.SIGKILL)
a.proc.wait()
# Counted right after the kill, before anyone ticks: exactly the tasks the dead worker held (counting before
# the kill would race with its next claim). Its children may still finish and write to the ledger.
inflight = count("state = 'running' AND worker = 'victim'")
done_by_a = count("state = 'succeeded'")
t.ok(inflight > 0, "tasks were in flight at the kill")
b = Worker(db, conf % ("rescuer", "on"))
t.ok(wait_until(lambda: count("state IN ('succeeded', 'failed', 'cancelled')") == N, 240),
     "every task reaches a terminal state after worker B takes over",
     db.sql("SELECT state, count(*) FROM baton.tasks GROUP BY 1") + "\n" + b.logtext())
t.is_(b.stop(), 0, "B exits cleanly")
lines = open(ledger).read().split()
seen = collections.Counter(int(x) for x in lines)
ids = [int(x) for x in db.sql("SELECT id FROM baton.tasks ORDER BY id").split()]
lost = len([i for i in ids if seen[i] == 0]) + (N - count("state = 'succeeded'"))
reruns = sum(c - 1 for c in seen.values() if c > 1)
print("# tasks: %d, done by A before the kill: %d, in flight at the kill: %d, re-runs: %d, lost: %d"
      % (N, done_by_a, inflight, reruns, lost), flush=True)
t.is_(lost, 0, "lost = 0: every task succeeded and left its effect")
t.is_(sorted(seen), ids, "the ledger holds exactly the tasks' ids")
t.ok(reruns <= inflight, "re-runs (%d) <= tasks in flight at the kill (%d)" % (reruns, inflight))
t.ok(max(seen.values()) <= 2, "no task ran more than twice")
