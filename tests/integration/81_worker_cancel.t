#!/usr/bin/env python3
# 81_worker_cancel.t — cancellation reaches the handler: baton.cancel() of a running task stops an exec process
# group, tells a stream co-process ({"cancel": id}), aborts an http transfer and cancels a sql statement, through
# NOTIFY baton_cancel; in pooled mode through NOTIFY on listen_dsn's direct connection, and without it through
# heartbeats every pooled_poll_interval.
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script, pid_alive

t = Tap()
d = tmpdir("cancel")
os.chmod(d, 0o777)
db = Db("baton_worker_cancel")

# exec: a 30 s task that notes its pid
svc = write_script(os.path.join(d, "svc.sh"), """#!/bin/bash
cat >/dev/null
echo $$ >> %s/pids
exec sleep 30
""" % d)
# stream: a co-process that notes every line it receives and never answers
co = write_script(os.path.join(d, "co.py"), r'''#!/usr/bin/env python3
import sys
for line in sys.stdin:
    with open(%r, "a") as f:
        f.write(line)
''' % os.path.join(d, "stream.lines"))

# http: a raw server that reads the request, never answers, and notes when the worker closes the connection
events = []


def serve(ls):
    while True:
        c, _ = ls.accept()

        def one(c):
            c.settimeout(120)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    data += c.recv(65536)
                events.append("request")
                if c.recv(1) == b"":
                    events.append("closed")
            except OSError:
                events.append("closed")
            c.close()
        threading.Thread(target=one, args=(c,), daemon=True).start()


ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(16)
port = ls.getsockname()[1]
threading.Thread(target=serve, args=(ls,), daemon=True).start()

for q in ("ce", "cs", "ch", "cq", "co"):
    db.sql("SELECT baton.create_queue('%s', lease => '10 minutes')" % q)
conf = """[worker]
poll_interval = 60s
kill_grace = 300ms
[queue ce]
handler = exec
command = %s
timeout = 10min
[queue cs]
handler = stream
command = %s
timeout = 10min
[queue ch]
handler = http
url = http://127.0.0.1:%d/
timeout = 10min
[queue cq]
handler = sql
statement = SELECT pg_sleep(30)
timeout = 10min
""" % (svc, co, port)
w = Worker(db, conf)
ids = {q: int(db.sql("SELECT baton.enqueue('%s', '{}')" % q)) for q in ("ce", "cs", "ch", "cq")}


def running_all():
    return db.sql("SELECT count(*) FROM baton.tasks WHERE state = 'running'") == "4"


t.ok(wait_until(running_all, 60), "four tasks run (exec, stream, http, sql)", w.logtext())
pidfile = os.path.join(d, "pids")
t.ok(wait_until(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 30), "the exec child started")
t.ok(wait_until(lambda: "request" in events, 30), "the http request arrived")
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'") == "1", 30),
     "the sql statement runs")
t.ok(wait_until(lambda: os.path.exists(os.path.join(d, "stream.lines")), 30), "the co-process got its task")
pid = int(open(pidfile).read().split()[0])

t0 = time.time()
db.sql("SELECT baton.cancel(%d), baton.cancel(%d), baton.cancel(%d), baton.cancel(%d)" % (ids["ce"], ids["cs"], ids["ch"], ids["cq"]))
# A generous bound (the machine is shared): without the wake-up the handlers ran for 30 s (the heartbeat comes
# at a third of the 10 minute lease), so anything well under that proves it.
t.ok(wait_until(lambda: not pid_alive(pid), 10), "exec: the cancelled 30 s child is gone", w.logtext())
elapsed = time.time() - t0
t.ok(wait_until(lambda: "closed" in events, 10), "http: the transfer is aborted (the worker closed the connection)")
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'") == "0", 10),
     "sql: the statement is cancelled")
lines = [json.loads(l) for l in open(os.path.join(d, "stream.lines"))]
t.ok(wait_until(lambda: any(json.loads(l).get("cancel") == ids["cs"] for l in open(os.path.join(d, "stream.lines"))), 10),
     "stream: the co-process receives {\"cancel\": id}", open(os.path.join(d, "stream.lines")).read())
t.ok(elapsed < 10, "all within seconds of cancel, not at the next heartbeat (exec gone after %.2f s)" % elapsed)
t.is_(db.sql("SELECT string_agg(DISTINCT state::text, ',') FROM baton.tasks"), "cancelled", "the four tasks stay cancelled")
t.ok("cancelled; stopping it" in w.logtext(), "the worker logs the cancellation")
t.ok(w.proc.poll() is None, "the worker keeps running")
t.is_(w.stop(), 0, "clean exit")

# listen = off (pooled mode): the heartbeat finds the cancellation, at most every poll_interval.
os.remove(pidfile)
w = Worker(db, """[worker]
listen = off
poll_interval = 300ms
kill_grace = 300ms
[queue co]
handler = exec
command = %s
timeout = 10min
""" % svc)
i = int(db.sql("SELECT baton.enqueue('co', '{}')"))
t.ok(wait_until(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 60), "listen = off: the child started",
     w.logtext())
pid = int(open(pidfile).read().split()[0])
db.sql("SELECT baton.cancel(%d)" % i)
t.ok(wait_until(lambda: not pid_alive(pid), 10), "listen = off: the cancelled child is gone (heartbeat returned false)",
     w.logtext())
t.is_(w.stop(), 0, "clean exit")


def cancel_one(conf, what):
    """Starts a worker, cancels its running 30 s exec task; returns (seconds until the child was gone, the worker)."""
    if os.path.exists(pidfile):
        os.remove(pidfile)
    w = Worker(db, conf)
    i = int(db.sql("SELECT baton.enqueue('co', '{}')"))
    t.ok(wait_until(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 60), what + ": the child started",
         w.logtext())
    pid = int(open(pidfile).read().split()[0])
    t0 = time.time()
    db.sql("SELECT baton.cancel(%d)" % i)
    t.ok(wait_until(lambda: not pid_alive(pid), 10), what + ": the cancelled child is gone", w.logtext())
    return time.time() - t0, w


# Pooled mode with listen_dsn (issue 14): the NOTIFY baton_cancel arrives on the direct LISTEN connection.
# poll_interval = 60s and a 10 minute lease: no heartbeat comes within the bound, only the notification.
direct_dsn = "host=%s port=%s dbname=%s user=%s" % (os.environ["PGHOST"], os.environ.get("PGPORT", "5432"), db.name,
                                                     os.environ.get("PGUSER", "postgres"))
elapsed, w = cancel_one("""[worker]
listen_dsn = %s
poll_interval = 60s
kill_grace = 300ms
[queue co]
handler = exec
command = %s
timeout = 10min
""" % (direct_dsn, svc), "pooled + listen_dsn")
t.ok("cancelled; stopping it" in w.logtext(), "pooled + listen_dsn: told by NOTIFY on listen_dsn (%.2f s)" % elapsed,
     w.logtext())
t.is_(w.stop(), 0, "clean exit")

# Pooled mode without listen_dsn: heartbeats every pooled_poll_interval find it, even with a long poll_interval.
elapsed, w = cancel_one("""[worker]
listen = off
poll_interval = 60s
pooled_poll_interval = 300ms
kill_grace = 300ms
[queue co]
handler = exec
command = %s
timeout = 10min
""" % svc, "pooled, no listen_dsn")
t.ok("lease lost or task cancelled" in w.logtext(), "pooled, no listen_dsn: found by a heartbeat (%.2f s)" % elapsed,
     w.logtext())
t.is_(w.stop(), 0, "clean exit")
