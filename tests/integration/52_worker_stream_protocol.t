#!/usr/bin/env python3
# 52_worker_stream_protocol.t — a stream co-process that breaks the protocol (a line that is not JSON, no "id",
# an id it was never given, an attempt the task has not reached, a line beyond max_output) is restarted and its
# tasks in flight are retried; a late answer for a task that timed out is not a violation, and when it echoes its
# attempt it is not taken for the next attempt's answer; the worker keeps running throughout.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script

t = Tap()
db = Db("baton_worker_stream_protocol")
d = tmpdir("streamproto")
pids = os.path.join(d, "pids")
# First attempts misbehave as the payload says; later attempts are answered properly.
co = write_script(os.path.join(d, "co.py"), r'''#!/usr/bin/env python3
import json, os, sys, time
with open(%r, "a") as f:
    f.write("%%d\n" %% os.getpid())
for line in sys.stdin:
    req = json.loads(line)
    if "cancel" in req:
        continue                               # {"cancel": id}: nothing to stop here
    task = req["task"]
    do = task["payload"].get("do")
    first = task["attempt"] == 1
    if first and do == "hold":
        continue                       # never answered by this process
    if first and do == "garbage":
        out = "this is not json"
    elif first and do == "noid":
        out = json.dumps({"ok": True, "result": 1})
    elif first and do == "huge":
        out = json.dumps({"id": req["id"], "ok": True, "result": "x" * 100000})
    elif first and do == "wrongid":
        out = json.dumps({"id": 987654321, "ok": True})
    elif first and do == "badattempt":
        out = json.dumps({"id": req["id"], "attempt": 7, "ok": True})
    else:
        if first and do == "late":
            time.sleep(8)              # past the 5 s timeout: this answer comes late
        out = json.dumps({"id": req["id"], "attempt": req["attempt"], "ok": True,
                          "result": {"attempt": task["attempt"]}})
    sys.stdout.write(out + "\n")
    sys.stdout.flush()
''' % pids)
db.sql("SELECT baton.create_queue('s', max_attempts => 5, backoff_base => '0', backoff_cap => '0')")
w = Worker(db, """[worker]
concurrency = 4
poll_interval = 100ms
[queue s]
handler = stream
command = %s
processes = 1
timeout = 5s
max_output = 16KiB
""" % co)


def enqueue(do):
    return int(db.sql("SELECT baton.enqueue('s', '{\"do\": \"%s\"}')" % do))


def row(i):
    return db.sql("SELECT state || ' ' || attempt FROM baton.tasks WHERE id = %d" % i)


def nprocs():
    return len(open(pids).read().split()) if os.path.exists(pids) else 0


hold = enqueue("hold")
t.ok(wait_until(lambda: row(hold) == "running 1" and nprocs() == 1, 10), "a task is in flight in the co-process", w.logtext())
garbage = enqueue("garbage")
t.ok(wait_until(lambda: row(garbage) == "succeeded 2" and row(hold) == "succeeded 2", 10),
     "a line that is not JSON: the co-process is restarted, the bad task and the one in flight are retried and succeed",
     w.logtext())
log = w.logtext()
t.ok("response is not valid JSON: this is not json; restarting it" in log, "the log names the bad line", log)
t.ok("task %d attempt 1 failed (will retry): stream co-process" % hold in log,
     "the task in flight was failed for retry", log)
t.is_(nprocs(), 2, "one restart")

noid = enqueue("noid")
t.ok(wait_until(lambda: row(noid) == "succeeded 2", 10), "a response without \"id\": restarted, the task retried", w.logtext())
t.ok("response without \"id\"" in w.logtext(), "the log says so")
t.is_(nprocs(), 3, "another restart")

wrong = enqueue("wrongid")
t.ok(wait_until(lambda: row(wrong) == "succeeded 2", 10), "a response for an id it was never given: restarted, retried",
     w.logtext())
t.ok("response for a task it was not given" in w.logtext(), "the log says so")
t.is_(nprocs(), 4, "another restart")

huge = enqueue("huge")
t.ok(wait_until(lambda: row(huge) == "succeeded 2", 10), "a response line beyond max_output: restarted, the task retried",
     w.logtext())
t.ok("response line exceeds max_output (16384 bytes); restarting it" in w.logtext(), "the log says so")
t.is_(nprocs(), 5, "another restart")

bad = enqueue("badattempt")
# The restart backoff has grown by now: the retry may time out once more before the new co-process is up.
t.ok(wait_until(lambda: row(bad) in ("succeeded 2", "succeeded 3", "succeeded 4"), 15),
     "a response for an attempt the task has not reached: restarted, retried", w.logtext())
t.ok("response for an attempt it was not given" in w.logtext(), "the log says so")
t.is_(nprocs(), 6, "another restart")

late = enqueue("late")
t.ok(wait_until(lambda: row(late) == "succeeded 2", 30), "a task past its timeout is retried", w.logtext())
t.is_(db.sql("SELECT result::text FROM baton.tasks WHERE id = %d" % late), '{"attempt": 2}',
      "attempt 1's late answer (it echoes its attempt) is not taken for attempt 2's, which follows it on the same "
      "co-process", w.logtext())
after = enqueue("ok")
t.ok(wait_until(lambda: row(after) == "succeeded 1", 10), "the next task is answered")
t.is_(nprocs(), 6, "the late answer for the timed-out task is no violation: no restart", w.logtext())

t.ok(w.proc.poll() is None, "the worker kept running throughout")
t.is_(w.stop(), 0, "clean exit")
