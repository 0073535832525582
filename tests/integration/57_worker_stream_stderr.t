#!/usr/bin/env python3
# 57_worker_stream_stderr.t — what a stream co-process writes to stderr reaches the worker's log one entry per
# line (over-long lines cut at 4 KiB), so the worker's JSON log stays one JSON object per line.
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script

t = Tap()
db = Db("baton_worker_stream_stderr")
d = tmpdir("streamerr")
co = write_script(os.path.join(d, "co.py"), r'''#!/usr/bin/env python3
import json, sys
for line in sys.stdin:
    req = json.loads(line)
    if "cancel" in req:
        continue                               # {"cancel": id}: nothing to stop here
    n = req["task"]["payload"]["n"]
    sys.stderr.write("working on %d\n" % n)
    if n == 2:
        sys.stderr.write("x" * 10000 + "\n")          # one over-long line
        sys.stderr.write("a \"quoted\"\tline\n")      # characters JSON must escape
    sys.stderr.flush()
    sys.stdout.write(json.dumps({"id": req["id"], "attempt": req["attempt"], "ok": True}) + "\n")
    sys.stdout.flush()
''')
db.sql("SELECT baton.create_queue('s')")
db.sql("SELECT baton.enqueue_many('s', '[{\"n\": 1}, {\"n\": 2}, {\"n\": 3}]')")
w = Worker(db, """[worker]
concurrency = 4
log_format = json
[queue s]
handler = stream
command = %s
""" % co)
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE state = 'succeeded'") == "3", 20),
     "three tasks succeed", w.logtext())
t.is_(w.stop(), 0, "clean exit")
lines = w.logtext().splitlines()
entries = []
bad = []
for line in lines:
    try:
        entries.append(json.loads(line))
    except ValueError:
        bad.append(line)
t.ok(lines and not bad, "every line of the worker's log is a JSON object (%d lines)" % len(lines), "\n".join(bad[:3]))
said = [e["msg"].split(" stderr: ", 1)[1] for e in entries if " stderr: " in e.get("msg", "")]
t.ok(all("working on %d" % n in said for n in (1, 2, 3)), "each stderr line is a log entry", "\n".join(said))
long_ = [s for s in said if s.startswith("xxx")]
t.ok(len(long_) == 1 and len(long_[0]) == 4096, "an over-long line is logged once, cut at 4 KiB",
     [len(s) for s in long_])
t.ok('a "quoted"' in "\n".join(said), "quotes and tabs come through, escaped", "\n".join(said))
