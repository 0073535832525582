#!/usr/bin/env python3
# 82_worker_deadline.t — a task's own timeout (enqueue(..., timeout) or a workflow step's "timeout") is an
# execution deadline the worker enforces: the handler is stopped and the attempt fails for retry with
# "timed out after ...", though heartbeats keep extending the lease.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script, pid_alive

t = Tap()
d = tmpdir("deadline")
os.chmod(d, 0o777)
db = Db("baton_worker_deadline")
svc = write_script(os.path.join(d, "svc.sh"), """#!/bin/bash
cat >/dev/null
echo $$ >> %s/pids
sleep 30
echo '"slept"'
""" % d)
db.sql("SELECT baton.create_queue('dl', max_attempts => 2, backoff_base => '0', backoff_cap => '0')")
db.sql("SELECT baton.create_queue('dq', max_attempts => 1)")
w = Worker(db, """[worker]
poll_interval = 200ms
kill_grace = 300ms
[queue dl]
handler = exec
command = %s
timeout = 10min
[queue dq]
handler = sql
statement = SELECT pg_sleep(30)
timeout = 10min
""" % svc)
# The queue's timeout in the config is 10 minutes; the task's own is 2 seconds, and heartbeats (every 2/3 s
# at a lease of 2 s) would keep the lease alive for the whole 30 s.
i = int(db.sql("SELECT baton.enqueue('dl', '{}', timeout => '2 seconds')"))
j = int(db.sql("SELECT baton.enqueue('dq', '{}', timeout => '2 seconds')"))
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % i) == "failed", 60),
     "exec: the task stopped at its own deadline and failed after its 2 attempts", w.logtext())
t.is_(db.sql("SELECT attempt || ' ' || error FROM baton.tasks WHERE id = %d" % i), "2 timed out after 2s",
      "each attempt failed for retry with 'timed out after 2s'")
pids = [int(p) for p in open(os.path.join(d, "pids")).read().split()]
t.ok(wait_until(lambda: not any(pid_alive(p) for p in pids), 10), "both children are gone")
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % j) == "failed", 60),
     "sql: the statement stopped at the task's deadline", w.logtext())
t.is_(db.sql("SELECT error FROM baton.tasks WHERE id = %d" % j), "timed out after 2s", "with 'timed out after 2s'")
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'") == "0", 10),
     "and its statement was cancelled")

# A workflow step's timeout is copied to its task: the same deadline.
db.sql("""SELECT baton.define_workflow('wdl', '{"steps": {"slow": {"queue": "dl", "timeout": "2 seconds"}}}')""")
r = int(db.sql("SELECT baton.start('wdl', '{}')"))
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.runs WHERE id = %d" % r) == "failed", 90),
     "a step with \"timeout\": \"2 seconds\" stops at its deadline (the run fails after the step's attempts)", w.logtext())
t.ok("timed out after 2s" in db.sql("SELECT string_agg(error, ';') FROM baton.tasks WHERE run_id = %d" % r),
     "the step's task failed with 'timed out after 2s'")
t.is_(w.stop(), 0, "clean exit")
