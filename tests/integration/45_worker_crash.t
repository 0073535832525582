#!/usr/bin/env python3
# 45_worker_crash.t — reconnect after a server restart losing nothing, kill -9 of a worker (another one finishes
# its tasks), heartbeats keeping a task alive past its lease, listen = off (pooler mode).
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script, pid_alive, ROOT

t = Tap()
d = tmpdir("crash")
os.chmod(d, 0o777)

# ---- kill -9: another worker completes the tasks (session-bound rescue in baton.tick) ----
db = Db("baton_worker_kill")
flag = os.path.join(d, "slow")
open(flag, "w").close()
svc = write_script(os.path.join(d, "svc.sh"), """#!/bin/bash
cat >/dev/null
echo $$ >> %s/pids
if [ -e %s ]; then sleep 60; fi
echo '"ok"'
""" % (d, flag))
db.sql("SELECT baton.create_queue('k', lease => '10 minutes')")
ids = [int(db.sql("SELECT baton.enqueue('k')")) for _ in range(3)]
conf = """[worker]
tick_interval = 200ms
poll_interval = 200ms
[queue k]
handler = exec
command = %s
timeout = 120s
""" % svc
a = Worker(db, conf.replace("[worker]", "[worker]\nid = victim\ntick = off"))
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE state = 'running' AND worker = 'victim'") == "3", 10),
     "worker A runs the three tasks", a.logtext())
pidfile = os.path.join(d, "pids")
wait_until(lambda: os.path.exists(pidfile) and len(open(pidfile).read().split()) == 3, 10)
a.proc.send_signal(signal.SIGKILL)
a.proc.wait()
for p in open(os.path.join(d, "pids")).read().split():
    try:
        os.killpg(int(p), signal.SIGKILL)
    except ProcessLookupError:
        pass
os.remove(flag)
b = Worker(db, conf.replace("[worker]", "[worker]\nid = rescuer"))   # tick = auto: no scheduler runs, so B ticks
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE state = 'succeeded'") == "3", 20),
     "after kill -9 of A, worker B completes its tasks", b.logtext())
t.is_(db.sql("SELECT string_agg(DISTINCT worker || ' ' || attempt, ',') FROM baton.tasks"), "rescuer 2",
      "rescued by tick (session ended) and run by B as attempt 2")
t.is_(b.stop(), 0, "B exits cleanly")

# ---- heartbeats keep a task whose run is longer than its lease ----
db.sql("SELECT baton.create_queue('h', lease => '1 second')")
svc2 = write_script(os.path.join(d, "slow.sh"), "#!/bin/bash\ncat >/dev/null\nsleep 3\necho '\"slept\"'\n")
hid = int(db.sql("SELECT baton.enqueue('h')"))
w = Worker(db, """[worker]
tick = on
tick_interval = 100ms
[queue h]
handler = exec
command = %s
timeout = 20s
""" % svc2)
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % hid) == "succeeded", 20),
     "a 3 s task with a 1 s lease succeeds", w.logtext())
t.is_(db.sql("SELECT attempt FROM baton.tasks WHERE id = %d" % hid), "1",
      "in its first attempt: heartbeats extended the lease while tick() ran every 100 ms")
# A task cancelled while it runs is stopped (NOTIFY baton_cancel, else the next heartbeat) and not reported.
cid = int(db.sql("SELECT baton.enqueue('h')"))
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % cid) == "running", 10), "the next task runs")
db.sql("SELECT baton.cancel(%d)" % cid)
t.ok(wait_until(lambda: "cancelled; stopping it" in w.logtext(), 5),
     "the worker learns of the cancel and stops the child", w.logtext())
t.is_(w.stop(), 0, "clean exit")
t.is_(db.sql("SELECT state FROM baton.tasks WHERE id = %d" % cid), "cancelled", "the cancelled task stays cancelled")

# ---- listen = off: polling only, claims not bound to the session (transaction pooling) ----
db.sql("SELECT baton.create_queue('p')")
open(flag, "w").close()
before = len(open(pidfile).read().split())
pid_ = int(db.sql("SELECT baton.enqueue('p')"))
w = Worker(db, """[worker]
listen = off
poll_interval = 100ms
[queue p]
handler = exec
command = %s
timeout = 120s
""" % svc)
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % pid_) == "running", 10),
     "listen = off: the polling worker claims", w.logtext())
wait_until(lambda: len(open(pidfile).read().split()) == before + 1, 10)
t.is_(db.sql("SELECT claim_pid IS NULL FROM baton._tasks WHERE id = %d" % pid_), "t",
      "listen = off claims with session_bound => false")
t.is_(db.sql("SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN baton_tasks'"), "0", "and does not LISTEN")
os.remove(flag)
for p in open(os.path.join(d, "pids")).read().split():
    try:
        os.killpg(int(p), signal.SIGTERM)
    except ProcessLookupError:
        pass
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % pid_) in ("pending", "succeeded", "failed"), 10),
     "the killed child's task is reported")
w.kill()

# ---- reconnect after a server restart: nothing lost ----
cdir = os.path.join(d, "cluster")
cenv = dict(os.environ, BATON_CLUSTER_DIR=cdir, BATON_PORT="5432")
cluster = os.path.join(ROOT, "scripts", "cluster.sh")


def cl(*args):
    r = subprocess.run([cluster] + list(args), env=cenv, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return r.stdout


cl("start")
for line in cl("env").split():
    if "=" in line and line != "export":
        k, v = line.split("=", 1)
        cenv[k] = v


class OwnDb(Db):
    def __init__(self, env):
        self.env = env
        self.name = env["PGDATABASE"]


odb = OwnDb(cenv)
odb.sql("SELECT baton.create_queue('r'); SELECT baton.create_queue('rs'); CREATE TABLE public.hits (task bigint NOT NULL)")
odb.sql("SELECT count(*) FROM baton.enqueue_many('r', (SELECT jsonb_agg(i) FROM generate_series(1, 40) AS i))")
odb.sql("SELECT count(*) FROM baton.enqueue_many('rs', (SELECT jsonb_agg(i) FROM generate_series(1, 40) AS i))")
fast = write_script(os.path.join(d, "fast.sh"), "#!/bin/bash\ncat >/dev/null\nsleep 0.1\necho '\"fine\"'\n")
# A multi-host conninfo: the first host does not exist, libpq moves on to the second.
multi = "host=%s,%s port=5432,5432 dbname=baton" % (os.path.join(d, "no-such-host"), cenv["PGHOST"])
w = Worker(odb, """[worker]
concurrency = 4
poll_interval = 200ms
tick_interval = 200ms
reconnect_max = 500ms
[queue r]
handler = exec
command = %s
timeout = 30s
[queue rs]
handler = sql
statement = INSERT INTO public.hits (task) SELECT $2 FROM pg_sleep(0.05)
concurrency = 2
""" % fast, args=["--dsn", multi])
t.ok(wait_until(lambda: int(odb.sql("SELECT count(*) FROM baton.tasks WHERE state = 'succeeded'")) >= 4, 20),
     "tasks run before the restart", w.logtext())
cl("restart")
t.ok(wait_until(lambda: "reconnected" in w.logtext(), 20), "the worker reconnects after the server restart", w.logtext())
t.ok(wait_until(lambda: odb.sql("SELECT count(*) FROM baton.tasks WHERE state = 'succeeded'") == "80", 40),
     "every task reaches succeeded: nothing lost", odb.sql("SELECT state, count(*) FROM baton.tasks GROUP BY 1"))
t.is_(odb.sql("SELECT count(*) || ' ' || count(DISTINCT task) FROM public.hits"), "40 40",
      "sql handler across the restart: exactly one row per task (effect and completion commit together)")
t.is_(odb.sql("SELECT count(*) FROM baton._workers AS w JOIN pg_stat_activity AS a ON a.pid = w.backend_pid"), "1",
      "registered again from the new session after the reconnect")
t.is_(w.stop(), 0, "clean exit")

# ---- an outcome produced while the server is down is reported after the reconnect ----
go = os.path.join(d, "go")
held = write_script(os.path.join(d, "held.sh"), """#!/bin/bash
cat >/dev/null
echo $$ > %s/held.pid
while [ ! -e %s ]; do sleep 0.05; done
echo '"made it"'
""" % (d, go))
odb.sql("SELECT baton.create_queue('held')")
hid = int(odb.sql("SELECT baton.enqueue('held')"))
w = Worker(odb, "[worker]\nreconnect_max = 300ms\n[queue held]\nhandler = exec\ncommand = %s\n" % held)
hpid_file = os.path.join(d, "held.pid")
t.ok(wait_until(lambda: os.path.exists(hpid_file) and open(hpid_file).read().strip() != "", 10), "the task's child runs")
hpid = int(open(hpid_file).read())
cl("stop")
open(go, "w").close()
t.ok(wait_until(lambda: not pid_alive(hpid), 10), "the child finishes while the server is down")
cl("start")
t.ok(wait_until(lambda: odb.sql("SELECT state FROM baton.tasks WHERE id = %d" % hid) == "succeeded", 20),
     "its outcome is reported after the reconnect", w.logtext())
t.is_(odb.sql("SELECT attempt || ' ' || (result #>> '{}') FROM baton.tasks WHERE id = %d" % hid), "1 made it",
      "by the same attempt (the report was kept, not the task re-run)")
t.is_(w.stop(), 0, "clean exit")

# ---- SIGTERM while the database is unreachable and nothing is in flight: exit at once ----
w = Worker(odb, "[worker]\ngrace = 60s\n[queue r]\nhandler = noop\n",
           args=["--dsn", "host=%s port=5432 dbname=baton" % os.path.join(d, "gone")])
t.ok(wait_until(lambda: "reconnecting in" in w.logtext(), 10), "a worker without a database keeps retrying", w.logtext())
w.signal(signal.SIGTERM)
try:
    rc = w.proc.wait(20)
except subprocess.TimeoutExpired:
    rc = "still running"
t.is_(rc, 0, "SIGTERM with nothing to report exits without waiting for the database", w.logtext())
cl("destroy")
shutil.rmtree(d, ignore_errors=True)
