#!/usr/bin/env python3
# 50_worker_tick.t — tick = auto skips baton.tick() while the scheduler background worker runs; a plain
# baton_worker login (no superuser, no pg_read_all_stats) is enough to run a worker.
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, ROOT

t = Tap()
d = tmpdir("tick")
cdir = os.path.join(d, "cluster")
cenv = dict(os.environ, BATON_CLUSTER_DIR=cdir, BATON_PORT="5432")
cluster = os.path.join(ROOT, "scripts", "cluster.sh")


def cl(*args):
    r = subprocess.run([cluster] + list(args), env=cenv, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return r.stdout


class OwnDb(Db):
    def __init__(self, env):
        self.env = env
        self.name = env["PGDATABASE"]

    def drop(self):
        pass


try:
    cl("start", "--preload")
    for line in cl("env").split():
        if "=" in line:
            k, v = line.split("=", 1)
            cenv[k] = v
    admin = OwnDb(cenv)
    t.ok(wait_until(lambda: admin.sql("SELECT baton.scheduler_running()") == "t", 20), "the scheduler background worker runs")
    admin.sql("CREATE ROLE bw_login LOGIN IN ROLE baton_worker; SELECT baton.create_queue('q')")
    admin.sql("SELECT count(*) FROM baton.enqueue_many('q', (SELECT jsonb_agg(i) FROM generate_series(1, 20) AS i))")
    wenv = dict(cenv, PGUSER="bw_login")
    conf = """[worker]
log_level = debug
tick_interval = 100ms
poll_interval = 200ms
%s
[queue q]
handler = noop
"""
    w = Worker(OwnDb(wenv), conf % "tick = auto")
    t.ok(wait_until(lambda: admin.sql("SELECT count(*) FROM baton.tasks WHERE state = 'succeeded'") == "20", 20),
         "a worker logged in as a plain baton_worker role runs tasks", w.logtext())
    t.ok(wait_until(lambda: "the baton scheduler runs for this database; not calling tick()" in w.logtext(), 10),
         "tick = auto sees the scheduler (through baton.scheduler_running())", w.logtext())
    time.sleep(0.5)
    t.ok("tick: {" not in w.logtext(), "and never calls tick() itself")
    t.is_(w.stop(), 0, "clean exit")
    w = Worker(OwnDb(wenv), conf % "tick = on")
    t.ok(wait_until(lambda: "tick: {" in w.logtext(), 10), "tick = on calls tick() all the same", w.logtext())
    t.is_(w.stop(), 0, "clean exit")
finally:
    cl("destroy")
