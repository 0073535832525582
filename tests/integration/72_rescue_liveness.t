#!/usr/bin/env python3
# 72_rescue_liveness.t — tick() judges dead sessions on a fresh list of backends (issue 12 item 5) and rescues
# the tasks of registered workers not seen for baton.worker_timeout, session-bound or not (issue 14).
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import Tap, Db, wait_until, ROOT

t = Tap()
db = Db("baton_rescue_liveness")


class Session:
    """An interactive psql session: statements go in one at a time, the connection stays open between them."""

    def __init__(self, db):
        self.p = subprocess.Popen(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"], env=db.env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.n = 0

    def sql(self, q):
        """Runs q and returns its output lines (up to a marker echoed after it)."""
        self.n += 1
        mark = "--done-%d--" % self.n
        self.p.stdin.write(q.rstrip().rstrip(";") + ";\n\\echo " + mark + "\n")
        self.p.stdin.flush()
        out = []
        while True:
            line = self.p.stdout.readline()
            if not line or line.strip() == mark:
                return "\n".join(out)
            out.append(line.rstrip("\n"))

    def close(self):
        self.p.stdin.close()
        self.p.wait(30)


# ---- issue 12 item 5: a session that connects after the tick's transaction first read pg_stat_activity ----
db.sql("SELECT baton.create_queue('fresh', lease => '10 minutes')")
first = int(db.sql("SELECT baton.enqueue('fresh')"))
ticker = Session(db)
# The worker's tick = auto statement reads pg_stat_activity (scheduler_running) before tick() in one transaction.
ticker.sql("BEGIN")
t.is_(ticker.sql("SELECT baton.scheduler_running()"), "f", "the ticker's transaction has read the list of backends")
time.sleep(0.05)   # backend_start of the next session must be later than that read
late = Session(db)
t.is_(late.sql("SELECT id FROM baton.claim('{fresh}', 'late', 1)"), str(first),
      "a session that connected after that read claims the task (session-bound)")
summary = ticker.sql("SELECT baton.tick()")
ticker.sql("COMMIT")
t.is_(db.sql("SELECT state || ' ' || worker FROM baton.tasks WHERE id = %d" % first), "running late",
      "tick() does not take the live late session for dead", summary)
t.is_(late.sql("SELECT baton.complete(%d, 1, '{}')" % first), "t", "and its completion is accepted (no second run)")
late.close()

# The fast path still works: a session that really ended has its task rescued at the next tick.
second = int(db.sql("SELECT baton.enqueue('fresh')"))
gone = Session(db)
gone_pid = gone.sql("SELECT pg_backend_pid()")
gone.sql("SELECT id FROM baton.claim('{fresh}', 'gone', 1)")
gone.close()
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM pg_stat_activity WHERE pid = %s" % gone_pid) == "0", 10),
     "the claiming session has ended")
ticker.sql("SELECT baton.tick()")
t.is_(db.sql("SELECT state || ': ' || error FROM baton.tasks WHERE id = %d" % second), "pending: worker session ended",
      "a task of a session that ended is rescued by the next tick")
ticker.close()

# ---- issue 14: liveness by the worker registry, whatever the claim's session ----
# Nobody is judged within twice baton.worker_timeout of a server (re)start: wait for that to pass.
t.ok(wait_until(lambda: db.sql("SELECT min(backend_start) < now() - interval '21 seconds' FROM pg_stat_activity") == "t", 40),
     "the server has been up for twice the default baton.worker_timeout")
db.sql("SELECT baton.create_queue('reg', lease => '10 minutes')")
a = int(db.sql("SELECT baton.enqueue('reg')"))
b = int(db.sql("SELECT baton.enqueue('reg')"))
db.sql("SELECT baton.register_worker('w-dead', '{reg}')")
db.sql("SELECT baton.register_worker('w-live', '{reg}')")
t.is_(db.sql("SELECT count(*) FROM baton.claim('{reg}', 'w-dead', 1, session_bound => false)"), "1", "w-dead claims one task, not session-bound")
t.is_(db.sql("SELECT count(*) FROM baton.claim('{reg}', 'w-live', 1, session_bound => false)"), "1", "w-live claims the other")
dead_task = int(db.sql("SELECT id FROM baton.tasks WHERE worker = 'w-dead'"))
live_task = a + b - dead_task
db.sql("SELECT baton.tick()")
t.is_(db.sql("SELECT count(*) FROM baton.tasks WHERE state = 'running'"), "2", "with both seen just now nothing is rescued")
# w-dead stops calling worker_seen: 11 s ago (default baton.worker_timeout is 10 s); its claim is as old.
db.sql("UPDATE baton._workers SET last_seen = now() - interval '11 seconds' WHERE id = 'w-dead'")
db.sql("UPDATE baton._tasks SET started_at = now() - interval '11 seconds' WHERE id = %d" % dead_task)
t.is_(db.sql("SELECT alive FROM baton.workers WHERE worker = 'w-dead'"), "f", "baton.workers shows w-dead not alive")
out = db.sql("SELECT baton.tick()->>'rescued'")
t.is_(out, "1", "tick() rescues one task")
err = db.sql("SELECT state || ': ' || error FROM baton.tasks WHERE id = %d" % dead_task)
t.ok(err.startswith("pending: worker w-dead not seen since ") and "baton.worker_timeout = 00:00:10" in err,
     "the unseen worker's task is pending again with an error saying why", err)
t.is_(db.sql("SELECT state FROM baton.tasks WHERE id = %d" % live_task), "running", "the live worker's task is untouched")
# w-dead comes back: its late report is fenced, it carries on and claims anew.
t.is_(db.sql("SELECT baton.complete(%d, 1, '{}')" % dead_task), "f", "the returning worker's late completion is rejected")
t.is_(db.sql("SELECT baton.worker_seen('w-dead')"), "t", "worker_seen refreshes it")
t.is_(db.sql("SELECT count(*) FROM baton.claim('{reg}', 'w-dead', 1, session_bound => false)"), "1", "and it claims the task again")
t.is_(db.sql("SELECT attempt FROM baton.tasks WHERE id = %d" % dead_task), "2", "as attempt 2")

# A worker that claimed just now is never judged on an old last_seen (it may claim before its worker_seen).
db.sql("UPDATE baton._workers SET last_seen = now() - interval '11 seconds' WHERE id = 'w-dead'")
t.is_(db.sql("SELECT baton.tick()->>'rescued'"), "0", "a claim younger than baton.worker_timeout is kept")

# The setting: a shorter timeout takes effect; a bad one is a clear error.
env_short = dict(db.env, PGOPTIONS="-c baton.worker_timeout=2s")
db.sql("UPDATE baton._tasks SET started_at = now() - interval '3 seconds' WHERE id = %d" % dead_task)
db.sql("UPDATE baton._workers SET last_seen = now() - interval '3 seconds' WHERE id = 'w-dead'")
db.sql("SELECT baton.worker_seen('w-live')")
r = subprocess.run(["psql", "-X", "-qtA", "-c", "SELECT baton.tick()->>'rescued'"], env=env_short, capture_output=True, text=True)
t.is_(r.stdout.strip(), "1", "baton.worker_timeout = 2s rescues a worker unseen for 3 s", r.stderr)
r = subprocess.run(["psql", "-X", "-qtA", "-c", "SELECT baton.tick()"], env=dict(db.env, PGOPTIONS="-c baton.worker_timeout=soon"),
                   capture_output=True, text=True)
t.ok(r.returncode != 0 and "baton.worker_timeout must be a positive interval" in r.stderr, "a bad baton.worker_timeout is a clear error", r.stderr)

# Right after a server restart nobody is judged: the workers could not reach it while it was down.
db.sql("SELECT count(*) FROM baton.claim('{reg}', 'w-dead', 1, session_bound => false)")
db.sql("UPDATE baton._tasks SET started_at = now() - interval '1 minute' WHERE id = %d" % dead_task)
db.sql("UPDATE baton._workers SET last_seen = now() - interval '1 minute' WHERE id = 'w-dead'")
db.sql("SELECT baton.worker_seen('w-live')")
t.is_(db.sql("SELECT baton.tick()->>'rescued'"), "1", "(control: a worker unseen for a minute is rescued)")
db.sql("SELECT count(*) FROM baton.claim('{reg}', 'w-dead', 1, session_bound => false)")
db.sql("UPDATE baton._tasks SET started_at = now() - interval '1 minute' WHERE id = %d" % dead_task)
db.sql("UPDATE baton._workers SET last_seen = now() - interval '1 minute' WHERE id = 'w-dead'")
r = subprocess.run([os.path.join(ROOT, "scripts", "cluster.sh"), "restart"], capture_output=True, text=True)
t.ok(r.returncode == 0, "the server restarts", r.stderr)
wait_until(lambda: subprocess.run(["pg_isready", "-q"], env=db.env).returncode == 0, 60, 0.2)
db.sql("SELECT baton.worker_seen('w-live')")
t.is_(db.sql("SELECT baton.tick()->>'rescued'"), "0", "just after a restart a worker unseen for a minute is not judged yet")
t.ok(wait_until(lambda: db.sql("SELECT baton.worker_seen('w-live'), baton.tick()->>'rescued'") == "t|1", 40, 0.5),
     "twice baton.worker_timeout later it is")
