#!/usr/bin/env python3
# 80_worker_orphans.t — no orphans: kill -9 of a worker with 10 running exec tasks; its children die with it
# (PR_SET_PDEATHSIG), so the tasks, rescued and run again by another worker, never run twice at the same time.
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script, pid_alive

t = Tap()
d = tmpdir("orphans")
os.chmod(d, 0o777)
db = Db("baton_worker_orphans")
ledger = os.path.join(d, "ledger")
open(ledger, "w").close()
# Each execution writes "start ID PID TIME" and, if it lives, "end ID PID TIME" to the ledger.
svc = write_script(os.path.join(d, "svc.sh"), r"""#!/bin/bash
id=$(sed -E 's/^\{"id":([0-9]+),.*/\1/')
echo "start $id $$ $(date +%%s.%%N)" >> %s
sleep "$(cat %s/duration)"
echo "end $id $$ $(date +%%s.%%N)" >> %s
echo '"done"'
""" % (ledger, d, ledger))
with open(os.path.join(d, "duration"), "w") as f:
    f.write("60\n")


def ledger_rows():
    with open(ledger) as f:
        return [l.split() for l in f if l.strip()]


db.sql("SELECT baton.create_queue('o', lease => '10 minutes')")
ids = [int(x) for x in db.sql("SELECT baton.enqueue_many('o', (SELECT jsonb_agg(i) FROM generate_series(1, 10) AS i))").split()]
conf = """[worker]
tick_interval = 200ms
poll_interval = 200ms
concurrency = 10
[queue o]
handler = exec
command = %s
timeout = 10min
""" % svc
a = Worker(db, conf.replace("[worker]", "[worker]\nid = victim\ntick = off"))
t.ok(wait_until(lambda: len([r for r in ledger_rows() if r[0] == "start"]) == 10, 60),
     "worker A runs 10 tasks at once", a.logtext())
first = {int(r[2]): int(r[1]) for r in ledger_rows() if r[0] == "start"}
t.ok(all(pid_alive(p) for p in first), "the 10 children are alive")
a.proc.send_signal(signal.SIGKILL)
a.proc.wait()
# PR_SET_PDEATHSIG delivers SIGKILL to each child as the worker dies: a generous bound, no timing asserted.
gone = wait_until(lambda: not any(pid_alive(p) for p in first), 10)
t_gone = time.time()
t.ok(gone, "after kill -9 of the worker, none of its children is alive", [p for p in first if pid_alive(p)])
t.is_(len([r for r in ledger_rows() if r[0] == "end"]), 0, "no killed child reached its end mark")

with open(os.path.join(d, "duration"), "w") as f:
    f.write("0.2\n")
b = Worker(db, conf.replace("[worker]", "[worker]\nid = rescuer"))
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE queue = 'o' AND state = 'succeeded'") == "10", 120),
     "worker B completes the 10 rescued tasks", b.logtext())
rows = ledger_rows()
second = [r for r in rows if r[0] == "start" and int(r[2]) not in first]
t.is_(sorted(int(r[1]) for r in second), sorted(ids), "each task ran once more, in worker B")
t.ok(all(float(r[3]) >= t_gone - 0.001 for r in second),
     "no second execution started while a first one was alive (no two executions of a task overlap)",
     "gone at %.3f; second starts: %s" % (t_gone, sorted(float(r[3]) for r in second)))
t.is_(b.stop(), 0, "B exits cleanly")
