#!/usr/bin/env python3
# 82_worker_dsn.t — baton-worker refuses a DSN libpq cannot parse at once (exit 2, named), and says in one line why each connection attempt failed.
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("BATON_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
WORKER = os.environ.get("BATON_WORKER", os.path.join(ROOT, "worker", "baton-worker"))
n = 0
failed = 0


def ok(cond, name, detail=""):
    global n, failed
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, name))
    if not cond:
        failed += 1
        for line in str(detail).splitlines()[:20]:
            print("#   " + line)


with tempfile.TemporaryDirectory() as d:
    conf = os.path.join(d, "w.conf")
    with open(conf, "w") as f:
        f.write("[queue q]\nhandler = noop\n")
    r = subprocess.run([WORKER, "--config", conf, "--dsn", "this is not a dsn"], capture_output=True, text=True, timeout=30)
    ok(r.returncode == 2, "a DSN libpq cannot parse: exit 2", r.returncode)
    ok(r.stderr.strip().splitlines() == ['baton-worker: invalid --dsn "this is not a dsn": missing "=" after "this" in connection info string'],
       "one line naming the DSN and libpq's reason", r.stderr)
    r = subprocess.run([WORKER, "--config", conf, "--dsn", "host=x password=hunter2 oops"], capture_output=True, text=True,
                       timeout=30)
    ok(r.returncode == 2 and "hunter2" not in r.stderr and "not shown" in r.stderr, "a DSN with a password is not echoed",
       r.stderr)
    with open(conf, "w") as f:
        f.write("[worker]\ndsn = not a dsn\n[queue q]\nhandler = noop\n")
    r = subprocess.run([WORKER, "--config", conf], capture_output=True, text=True, timeout=30)
    ok(r.returncode == 2 and "invalid [worker] dsn" in r.stderr, "a bad [worker] dsn in the file: exit 2, named", r.stderr)

    # A database that does not exist: retried (it may be created meanwhile), one line per attempt saying why.
    with open(conf, "w") as f:
        f.write("[queue q]\nhandler = noop\n")
    log = open(os.path.join(d, "log"), "w+")
    p = subprocess.Popen([WORKER, "--config", conf, "--dsn", "dbname=no_such_db_%d" % os.getpid()], stdout=log, stderr=log)
    deadline = time.time() + 30
    text = ""
    while time.time() < deadline:
        log.seek(0)
        text = log.read()
        if text.count("reconnecting in") >= 2:
            break
        time.sleep(0.1)
    p.terminate()
    p.wait(timeout=30)
    log.seek(0)
    text = log.read()
    lines = [l for l in text.splitlines() if "reconnecting in" in l]
    ok(len(lines) >= 2 and all('database "no_such_db_%d" does not exist' % os.getpid() in l for l in lines),
       "each failed attempt: one line with the server's reason", text)
    ok(text.count("database: connecting") == 1, "later attempts do not repeat a 'connecting' line", text)
print("1..%d" % n)
sys.exit(1 if failed else 0)
