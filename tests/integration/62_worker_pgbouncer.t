#!/usr/bin/env python3
# 62_worker_pgbouncer.t — baton-worker behind a real PgBouncer 1.18 in transaction mode (issue 14): the default
# config detected (pooled mode, one log line), listen_dsn wake-ups, a drain of 5,000 tasks with every handler kind
# (0 failed, 0 run twice), no session state left for a bystander, RECONNECT and kill -9 of the server connections
# under load, and kill -9 of a worker rescued within 15 s with default settings.
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script
from pgbouncer_helpers import PgBouncer

t = Tap()
d = tmpdir("pgb")
os.chmod(d, 0o777)
POOL = 8
bouncer = PgBouncer(pool_size=POOL)
db = Db("baton_pgb")
direct_dsn = "host=%s port=%s dbname=%s user=%s" % (os.environ["PGHOST"], os.environ.get("PGPORT", "5432"), db.name,
                                                     os.environ.get("PGUSER", "postgres"))


def pooled_sql(q):
    r = subprocess.run(["psql", "-X", "-qtA", "-v", "ON_ERROR_STOP=1", "-c", q], env=bouncer.env(db.name),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("psql through pgbouncer failed: %s\n%s" % (q, r.stderr))
    return r.stdout.strip()


def count(where):
    return int(db.sql("SELECT count(*) FROM baton.tasks WHERE " + where))


def count_or_none(where):
    """count(), or None while the server restarts."""
    try:
        return count(where)
    except RuntimeError:
        return None


def server_pids():
    """The backend pids of PgBouncer's server connections to the test database (SHOW SERVERS)."""
    r = subprocess.run(["psql", "-X", "-A", "-F", "|", "-c", "SHOW SERVERS"], env=bouncer.env("pgbouncer"),
                       capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    head = lines[0].split("|")
    rows = [dict(zip(head, l.split("|"))) for l in lines[1:] if "|" in l]
    return {r["remote_pid"] for r in rows if r.get("database") == db.name}


# ---- the default config behind the pooler: detected, pooled mode, one clear log line ----
db.sql("SELECT baton.create_queue('d')")
base = "[worker]\ndsn = %s\n" % bouncer.dsn(db.name)
w = Worker(db, base + "id = detect\n[queue d]\nhandler = noop\n")
t.ok(wait_until(lambda: "database: connected" in w.logtext(), 20), "the worker with the default config connects through PgBouncer",
     w.logtext())
log = w.logtext()
t.ok(log.count("a transaction pooler such as PgBouncer; pooled mode") == 1 and "listen = off" in log
     and "listen_dsn" in log, "it detects the transaction pooler and says so once, naming the settings", log)
start = time.time()
ids = [int(db.sql("SELECT baton.enqueue('d')")) for _ in range(20)]
t.ok(wait_until(lambda: count("state = 'succeeded'") == 20, 30), "its tasks run", w.logtext())
print("# idle pooled worker: 20 tasks enqueued one by one ran within %.2f s (pooled_poll_interval 500ms)" % (time.time() - start))
t.is_(db.sql("SELECT count(*) FROM baton._tasks WHERE claim_pid IS NOT NULL"), "0",
      "claims are not bound to a (pooled) session")
t.ok("got packet 'A' from server when not linked" not in bouncer.logtext(), "no LISTEN went through the pooler",
     bouncer.logtext()[-2000:])
t.is_(w.stop(), 0, "clean exit")
# The same config straight to the server: no false alarm, LISTEN and session-bound claims as before.
wd = Worker(db, "[worker]\ndsn = %s\nid = direct\n[queue d]\nhandler = noop\n" % direct_dsn)
t.ok(wait_until(lambda: "database: connected" in wd.logtext(), 20), "a direct worker connects", wd.logtext())
one = int(db.sql("SELECT baton.enqueue('d')"))
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % one) == "succeeded", 20), "and runs a task")
t.ok("pooled mode" not in wd.logtext(), "a direct connection is not taken for a pooler", wd.logtext())
t.is_(db.sql("SELECT claim_pid IS NOT NULL FROM baton._tasks WHERE id = %d" % one), "t", "its claims are session-bound")
wd.stop()

# ---- listen_dsn: wake-ups on one direct connection, everything else through the pooler ----
wl = Worker(db, base + "id = wl\nlisten_dsn = %s\npoll_interval = 1h\npooled_poll_interval = 1h\n[queue d]\nhandler = noop\n"
            % direct_dsn)
t.ok(wait_until(lambda: "listen_dsn: listening for wake-ups on a direct connection" in wl.logtext(), 20),
     "listen_dsn: the worker listens on the direct connection", wl.logtext())
time.sleep(0.5)
one = int(db.sql("SELECT baton.enqueue('d')"))
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % one) == "succeeded", 20),
     "a task enqueued while it idles runs at once, though it polls only every hour", wl.logtext())
t.ok("pooled mode" not in wl.logtext(), "configured pooled mode needs no probe and no warning", wl.logtext())
wl.stop()

# ---- a drain of 5,000 tasks with every handler kind, two workers with the default config ----
ledger = os.path.join(d, "ledger")
os.mkdir(ledger)
os.chmod(ledger, 0o777)
exec_svc = write_script(os.path.join(d, "exec.sh"), """#!/bin/bash
task=$(cat)
[[ $task =~ \\"id\\":\\ *([0-9]+) ]] && echo "${BASH_REMATCH[1]}" >> %s/exec
echo '"ok"'
""" % ledger)
stream_svc = write_script(os.path.join(d, "stream.py"), """#!/usr/bin/env python3
import json, sys
out = open(%r, "a")
for line in sys.stdin:
    m = json.loads(line)
    out.write("%%d\\n" %% m["id"]); out.flush()
    print(json.dumps({"id": m["id"], "attempt": m["attempt"], "ok": True, "result": 1}), flush=True)
""" % os.path.join(ledger, "stream"))
http_seen = {}
http_lock = threading.Lock()


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with http_lock:
            http_seen[body["id"]] = http_seen.get(body["id"], 0) + 1
        out = b'"ok"'
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
db.sql("CREATE TABLE public.sql_runs (task bigint, at timestamptz DEFAULT now())")
db.sql("GRANT ALL ON public.sql_runs TO PUBLIC")
# exec forks a process per task, the slowest kind on a loaded machine: fewer of those.
kinds = {"noop": 1600, "sql": 1600, "stream": 1200, "http": 500, "exec": 100}
for k, n in kinds.items():
    db.sql("SELECT baton.create_queue('%s')" % k)
    db.sql("SELECT count(baton.enqueue('%s', jsonb_build_object('i', i))) FROM generate_series(1, %d) AS i" % (k, n))
queues = """[queue noop]
handler = noop
[queue sql]
handler = sql
timeout = 2s
statement = INSERT INTO public.sql_runs (task) VALUES ($2) RETURNING task
[queue stream]
handler = stream
command = %s
processes = 2
[queue http]
handler = http
url = http://127.0.0.1:%d/
[queue exec]
handler = exec
command = %s
concurrency = 16
""" % (stream_svc, srv.server_address[1], exec_svc)
total = sum(kinds.values())
start = time.time()
drain = [Worker(db, base + "id = drain%d\n" % i + queues) for i in range(2)]
t.ok(wait_until(lambda: count("queue IN ('noop','sql','stream','http','exec') AND state IN ('succeeded','failed')") == total, 300, 0.5),
     "5,000 tasks of every handler kind drain through PgBouncer", drain[0].logtext()[-3000:])
elapsed = time.time() - start
print("# pooled drain of %d mixed tasks by 2 workers: %.1f s" % (total, elapsed))
t.is_(count("state = 'failed'"), 0, "0 failed", db.sql("SELECT string_agg(DISTINCT error, '; ') FROM baton.tasks WHERE state = 'failed'"))
t.is_(count("queue IN ('noop','sql','stream','http','exec') AND attempt <> 1"), 0, "every task ran in its first attempt")


def ledger_ids(name):
    with open(os.path.join(ledger, name)) as f:
        return [int(x) for x in f.read().split()]


def once(ids, queue):
    want = sorted(int(x) for x in db.sql("SELECT string_agg(id::text, ' ') FROM baton.tasks WHERE queue = '%s'" % queue).split())
    return sorted(ids) == want


t.ok(once(ledger_ids("exec"), "exec"), "exec: each task ran exactly once")
t.ok(once(ledger_ids("stream"), "stream"), "stream: each task ran exactly once")
t.ok(once([i for i, n in http_seen.items() for _ in range(n)], "http"), "http: each task was posted exactly once")
t.ok(once([int(x) for x in db.sql("SELECT string_agg(task::text, ' ') FROM public.sql_runs").split()], "sql"),
     "sql: each task's statement committed exactly once")
for w in drain:
    t.is_(w.stop(), 0, "drain worker exits cleanly")

# ---- no session state: a bystander through the same pool sees its own settings ----
# POOL clients at once, each holding a server connection for a moment: together they see every server
# connection of the pool, including those the workers (and the 2 s sql queue) used.  Rounds repeat
# until every server connection open before them was seen (a slow psql start can make two share one).
used = server_pids()
t.ok(len(used) > 0, "the workers left %d server connections in the pool" % len(used))
seen, rows = [], []
for _ in range(5):
    procs = [subprocess.Popen(["psql", "-X", "-qtA", "-c",
                               "SELECT pg_backend_pid(), current_setting('search_path'), current_setting('statement_timeout'), "
                               "pg_sleep(2) IS NULL"], env=bouncer.env(db.name), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(POOL)]
    rows += [p.communicate(60) for p in procs]
    seen = [r[0].strip().split("|") for r in rows]
    if used <= {s[0] for s in seen if len(s) == 4}:
        break
t.ok(all(len(s) == 4 for s in seen), "every bystander's query ran", rows)
t.ok(used <= {s[0] for s in seen if len(s) == 4}, "the bystanders used every server connection the workers used",
     "used %s, seen %s" % (sorted(used), sorted({s[0] for s in seen if len(s) == 4})))
t.is_(sorted({s[1] for s in seen if len(s) == 4}), ['"$user", public'], "the bystanders' search_path is their own")
t.is_(sorted({s[2] for s in seen if len(s) == 4}), ["0"], "statement_timeout = 0 after the 2 s sql queue ran")
t.is_(pooled_sql("SELECT count(*) FROM sql_runs"), str(kinds["sql"]), "an unqualified table name resolves for the bystander")

# ---- RECONNECT and kill -9 of the server connections under load ----
slow = write_script(os.path.join(d, "slow.sh"), """#!/bin/bash
cat >/dev/null
sleep 0.2
echo '"ok"'
""")
db.sql("SELECT baton.create_queue('load', backoff_base => '0', backoff_cap => '0')")
db.sql("SELECT count(baton.enqueue(q, jsonb_build_object('i', i))) FROM generate_series(1, 150) AS i, "
       "unnest(ARRAY['load', 'noop', 'sql', 'stream']) AS q")
lq = queues + "[queue load]\nhandler = exec\ncommand = %s\nconcurrency = 8\n" % slow
CONC = 16
load = [Worker(db, base + "id = load%d\nconcurrency = %d\n" % (i, CONC) + lq) for i in range(2)]
first = count("state = 'succeeded'")
wait_until(lambda: count("state = 'succeeded'") >= first + 60, 60, 0.02)
t.ok(count("state = 'running'") > 0, "tasks are in flight")
bouncer.admin("RECONNECT")
wait_until(lambda: count("state = 'succeeded'") >= first + 200, 60, 0.02)
t.ok(count("state = 'running'") > 0, "tasks are in flight again after RECONNECT")
pids = db.sql("SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE datname = current_database() "
              "AND pid <> pg_backend_pid() AND backend_type = 'client backend'").split()
for p in pids[:3]:
    try:
        os.kill(int(p), signal.SIGKILL)
    except ProcessLookupError:
        pass
t.ok(len(pids) > 0, "kill -9 of %d of PgBouncer's server connections (the server restarts all sessions)" % min(3, len(pids)))
wait_until(lambda: subprocess.run(["pg_isready", "-q"], env=db.env).returncode == 0, 60, 0.2)
ok = wait_until(lambda: count_or_none("state NOT IN ('succeeded','failed','cancelled')") == 0, 180, 0.5)
t.ok(ok, "every task ends after RECONNECT and kill -9 of the server connections",
     load[0].logtext()[-3000:] + db.sql("SELECT string_agg(state || ' ' || n, ', ') FROM (SELECT state, count(*) AS n FROM baton.tasks GROUP BY state) x"))
t.is_(count("state = 'failed'"), 0, "none failed")
reruns = count("attempt > 1")
t.ok(reruns <= 2 * CONC, "re-runs only for tasks in flight (%d re-run, at most %d in flight)" % (reruns, 2 * CONC),
     db.sql("SELECT string_agg(DISTINCT error, '; ') FROM baton.tasks WHERE attempt > 1"))
for w in load:
    t.is_(w.stop(), 0, "load worker exits cleanly")

# ---- kill -9 of a worker: its tasks run elsewhere within 15 s, default settings ----
# tick() judges no worker within twice baton.worker_timeout of a server (re)start (the crash above).
wait_until(lambda: db.sql("SELECT min(backend_start) < now() - interval '21 seconds' FROM pg_stat_activity") == "t", 40)
flag = os.path.join(d, "hold")
open(flag, "w").close()
pidlog = os.path.join(d, "pids")
svc = write_script(os.path.join(d, "hold.sh"), """#!/bin/bash
cat >/dev/null
echo $$ >> %s
if [ -e %s ]; then sleep 60; fi
echo '"ok"'
""" % (pidlog, flag))
db.sql("SELECT baton.create_queue('k')")   # the default lease: 5 minutes
kids = [int(db.sql("SELECT baton.enqueue('k')")) for _ in range(3)]
kq = "[queue k]\nhandler = exec\ncommand = %s\ntimeout = 120s\n" % svc
victim = Worker(db, base + "id = victim\n" + kq)
t.ok(wait_until(lambda: count("queue = 'k' AND state = 'running' AND worker = 'victim'") == 3, 30),
     "the victim runs the three tasks", victim.logtext())
wait_until(lambda: os.path.exists(pidlog) and len(open(pidlog).read().split()) == 3, 10)
rescuer = Worker(db, base + "id = rescuer\n" + kq)
t.ok(wait_until(lambda: "database: connected" in rescuer.logtext(), 20), "a second worker idles", rescuer.logtext())
victim.proc.send_signal(signal.SIGKILL)
victim.proc.wait()
killed_at = time.time()
for p in open(pidlog).read().split():
    try:
        os.killpg(int(p), signal.SIGKILL)
    except ProcessLookupError:
        pass
os.remove(flag)
ok = wait_until(lambda: count("queue = 'k' AND state = 'succeeded'") == 3, 40, 0.1)
took = time.time() - killed_at
t.ok(ok and took < 15, "after kill -9 of the worker its tasks ran elsewhere in %.1f s (target 15 s)" % took, rescuer.logtext())
t.is_(db.sql("SELECT string_agg(DISTINCT worker || ' ' || attempt, ',') FROM baton.tasks WHERE queue = 'k'"), "rescuer 2",
      "run by the other worker as attempt 2")
err = db.sql("SELECT string_agg(DISTINCT error, ',') FROM baton._tasks WHERE queue = 'k'")
t.ok(err.startswith("worker victim not seen since"), "the rescue said why", err)
t.is_(rescuer.stop(), 0, "clean exit")
