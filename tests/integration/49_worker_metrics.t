#!/usr/bin/env python3
# 49_worker_metrics.t — the Prometheus endpoint (counters per queue, in-flight gauge) and JSON log lines.
import json
import os
import socket
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script

t = Tap()
db = Db("baton_worker_metrics")
d = tmpdir("metrics")
svc = write_script(os.path.join(d, "svc.sh"), """#!/bin/bash
input=$(cat)
case "$input" in *fail*) echo nope >&2; exit 65 ;; *again*) exit 75 ;; *hang*) sleep 60 ;; esac
""")
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
db.sql("SELECT baton.create_queue('m', max_attempts => 1); SELECT baton.create_queue('z')")
for p in ['"ok"', '"ok"', '"fail"', '"again"', '"hang"']:
    db.sql("SELECT baton.enqueue('m', '%s')" % p)
w = Worker(db, """[worker]
metrics_listen = 127.0.0.1:%d
log_format = json
[queue m]
handler = exec
command = %s
timeout = 60s
[queue z]
handler = noop
""" % (port, svc))
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE state <> 'running' AND state <> 'pending'") == "4", 20),
     "four tasks end, one hangs", w.logtext())


def metrics():
    try:
        return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    except OSError as e:
        return str(e)


m = metrics()
for line in ['baton_worker_tasks_claimed_total{queue="m"} 5', 'baton_worker_tasks_succeeded_total{queue="m"} 2',
             'baton_worker_tasks_failed_total{queue="m"} 1', 'baton_worker_tasks_retried_total{queue="m"} 1',
             'baton_worker_tasks_in_flight{queue="m"} 1', 'baton_worker_tasks_claimed_total{queue="z"} 0',
             'baton_worker_database_connected 1']:
    t.ok(line in m.splitlines(), "metrics: %s" % line, m)
t.ok("# TYPE baton_worker_tasks_in_flight gauge" in m, "metrics have TYPE lines")
lines = [l for l in w.logtext().splitlines() if l.strip()]
good = True
for l in lines:
    try:
        o = json.loads(l)
        good = good and {"ts", "level", "pid", "msg"} <= set(o)
    except ValueError:
        good = False
t.ok(good and len(lines) > 2, "log_format = json writes one JSON object per line", "\n".join(lines[:5]))
import signal, time
w.signal(signal.SIGINT)
time.sleep(0.3)   # two signals sent at once may merge into one
w.signal(signal.SIGINT)
t.is_(w.proc.wait(30), 0, "two SIGINTs: fast exit")
t.is_(db.sql("SELECT state FROM baton.tasks WHERE payload = '\"hang\"'"), "pending", "the hanging task was released")
