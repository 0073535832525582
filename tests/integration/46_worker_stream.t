#!/usr/bin/env python3
# 46_worker_stream.t — the stream handler: many tasks through one long-lived co-process (no fork per task),
# ok:false with and without retry, a crashed co-process is restarted and its tasks retried.
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script

t = Tap()
db = Db("baton_worker_stream")
d = tmpdir("stream")
pids = os.path.join(d, "pids")
co = write_script(os.path.join(d, "co.py"), r'''#!/usr/bin/env python3
import json, os, sys
with open(%r, "a") as f:
    f.write("%%d\n" %% os.getpid())
for line in sys.stdin:
    req = json.loads(line)
    if "cancel" in req:
        continue                               # {"cancel": id}: nothing to stop here
    task = req["task"]
    p = task["payload"]
    if p.get("crash") and task["attempt"] == 1:
        os._exit(9)
    if p.get("bad"):
        out = {"id": req["id"], "ok": False, "error": "bad input: %%s" %% p["bad"], "retry": False}
    elif p.get("later"):
        out = {"id": req["id"], "ok": False, "error": "try later", "retry": True}
    else:
        out = {"id": req["id"], "ok": True, "result": {"double": p["n"] * 2, "pid": os.getpid()}}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
''' % pids)
db.sql("SELECT baton.create_queue('s', max_attempts => 2, backoff_base => '0', backoff_cap => '0')")
db.sql("SELECT count(*) FROM baton.enqueue_many('s', (SELECT jsonb_agg(jsonb_build_object('n', i)) FROM generate_series(1, 200) AS i))")
w = Worker(db, """[worker]
concurrency = 16
poll_interval = 200ms
[queue s]
handler = stream
command = %s
processes = 1
timeout = 10s
""" % co)
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE state = 'succeeded'") == "200", 30),
     "200 tasks succeed through the co-process", w.logtext())
t.is_(db.sql("SELECT count(*) FROM baton.tasks WHERE (result->>'double')::int <> (payload->>'n')::int * 2"), "0",
      "each result belongs to its own task (responses matched by id)")
started = open(pids).read().split()
t.is_(len(started), 1, "one co-process served them all (no fork per task)")
t.is_(db.sql("SELECT count(DISTINCT result->>'pid') FROM baton.tasks"), "1", "the same pid answered every task")

bad = int(db.sql("SELECT baton.enqueue('s', '{\"bad\": \"x\"}')"))
later = int(db.sql("SELECT baton.enqueue('s', '{\"later\": true}')"))
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE id IN (%d, %d) AND state = 'failed'" % (bad, later)) == "2", 20),
     "ok:false tasks end failed", w.logtext())
t.is_(db.sql("SELECT attempt || ' ' || error FROM baton.tasks WHERE id = %d" % bad), "1 bad input: x",
      "retry:false fails at once with the error")
t.is_(db.sql("SELECT attempt || ' ' || error FROM baton.tasks WHERE id = %d" % later), "2 try later",
      "retry:true is retried until attempts run out")

crash = int(db.sql("SELECT baton.enqueue('s', '{\"crash\": true, \"n\": 21}')"))
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % crash) == "succeeded", 20),
     "a task whose co-process died is retried and succeeds", w.logtext())
t.ok("exited with code 9" in db.sql("SELECT error FROM baton.tasks WHERE id = %d" % crash) or "code 9" in w.logtext(),
     "the death is reported as the first attempt's error")
t.is_(len(open(pids).read().split()), 2, "the co-process was restarted once")
t.is_(w.stop(), 0, "clean exit")
