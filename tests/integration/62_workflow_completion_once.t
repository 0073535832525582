#!/usr/bin/env python3
# 62_workflow_completion_once.t — a handler that succeeded runs once even when its completion cannot be stored
# or applied (issue 12 item 6): numbers jsonb cannot store, a string jsonb refuses, a `when` predicate that
# errors at run time, a malformed emit.  Each ends failed at once, with the error, and the service's ledger
# shows one execution per task, though every task has three attempts.
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script

t = Tap()
db = Db("baton_completion_once")
d = tmpdir("once")
ledger = os.path.join(d, "ledger")

# Appends the task id to the ledger (the side effect), then prints the payload's "out" as its result.
svc = write_script(os.path.join(d, "svc.py"), r'''#!/usr/bin/env python3
import json, sys
task = json.load(sys.stdin)
with open(sys.argv[1], "a") as f:
    f.write("%d\n" % task["id"])
sys.stdout.write(task["payload"]["out"])
''')

db.sql("SELECT baton.create_queue(q, max_attempts => 3, backoff_base => '0', backoff_cap => '0') "
       "FROM unnest(ARRAY['once', 'once_b']) AS q")
db.sql("""SELECT baton.define_workflow('dated', $${"steps": {
    "a": {"queue": "once", "input": {"out": "$.input.out"}},
    "b": {"queue": "once_b", "after": ["a"],
          "when": "$.steps.a.output.at.datetime() < \\"2030-01-01T00:00:00+00:00\\".datetime()"}}}$$)""")

cases = {
    "huge number": '{"n": 1e999999}',
    "tiny number": '[1e-16384]',
    "NUL in a string": '{"s": "a\\u0000b"}',
    "malformed emit": '{"emit": "not.a.list"}',
}
ids = {}
for name, out in cases.items():
    ids[name] = int(db.sql("SELECT baton.enqueue('once', %s)" % ("'" + json.dumps({"out": out}).replace("'", "''") + "'")))
run = int(db.sql("SELECT baton.start('dated', '{\"out\": \"{\\\"at\\\": \\\"2024-05-01\\\"}\"}')"))
ids["when that errors"] = int(db.sql("SELECT id FROM baton.tasks WHERE run_id = %d AND step = 'a'" % run))

conf = """[worker]
concurrency = 4
poll_interval = 100ms
[queue once]
handler = exec
command = %s %s
timeout = 20s
""" % (svc, ledger)
w = Worker(db, conf)

idlist = ",".join(str(i) for i in ids.values())
done = wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE id IN (%s) AND state IN ('succeeded', 'failed', 'cancelled')"
                                 % idlist) == str(len(ids)), timeout=60)
t.ok(done, "every task ended", open(w.log).read() if not done else None)
runs = {}
if os.path.exists(ledger):
    for line in open(ledger):
        runs[int(line)] = runs.get(int(line), 0) + 1
for name, i in ids.items():
    state, attempt, error = db.sql("SELECT state || '|' || attempt || '|' || COALESCE(error, '') FROM baton.tasks WHERE id = %d"
                                   % i).split("|", 2)
    t.is_(runs.get(i, 0), 1, "%s: the service ran once" % name)
    t.is_((state, attempt), ("failed", "1"), "%s: the task failed at its first attempt" % name, error)
    t.ok(error != "", "%s: with the error: %s" % (name, error[:120]))
t.is_(db.sql("SELECT state FROM baton.runs WHERE id = %d" % run), "failed", "the run whose predicate errors failed")
t.ok("could not be applied" in db.sql("SELECT error FROM baton.runs WHERE id = %d" % run), "and says why")
w.stop()
