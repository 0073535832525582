#!/usr/bin/env python3
# 84_console_valgrind.t — `baton` commands and a `baton web` session under valgrind: no memory errors, no definite leaks
# (leaks inside the font libraries Graphviz renders with are suppressed by lib/console.supp; ours are not).
import os
import re
import signal
import subprocess
import sys
import urllib.request

ROOT = os.environ.get("BATON_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BATON = os.path.join(ROOT, "console", "baton")
DB = "console_vg_%d" % os.getpid()
VG = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
      "--show-leak-kinds=definite", "--suppressions=" + os.path.join(ROOT, "tests/integration/lib/console.supp")]
COMMANDS = [["--json", "status"], ["tasks"], ["task", "2"], ["run", "1"], ["subscriptions"], ["trace", "--run", "1"],
            ["retry", "2"], ["enqueue", "emails", "{bad"], ["wait", "1", "--timeout", "0.2"]]
n = 0
failed = 0


def ok(cond, name, detail=""):
    global n, failed
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, name), flush=True)
    if not cond:
        failed += 1
        for line in str(detail).splitlines()[:30]:
            print("#   " + line)


subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", "CREATE DATABASE %s TEMPLATE baton_template" % DB],
               check=True, capture_output=True)
env = dict(os.environ, PGDATABASE=DB)
try:
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", DB, "-f",
                    os.path.join(ROOT, "tests/integration/lib/console_seed.sql")], check=True, capture_output=True)
    for cmd in COMMANDS:
        r = subprocess.run(VG + [BATON] + cmd, capture_output=True, text=True, env=env, timeout=300)
        ok(r.returncode != 99 and "==" not in r.stderr, "baton %s: valgrind clean (exit %d)" % (" ".join(cmd), r.returncode),
           r.stderr)
    p = subprocess.Popen(VG + [BATON, "web", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    line = p.stdout.readline()
    m = re.search(r"http://(127\.0\.0\.1:\d+)/", line)
    urls = ["/", "/app.js", "/api/session", "/api/overview", "/api/tasks?state=failed", "/api/task?id=2", "/api/runs",
            "/api/run?id=1", "/api/run.svg?id=1", "/api/events", "/api/subscriptions", "/api/trace?run=1",
            "/api/trace.svg?event=1", "/api/schedules", "/api/workflows", "/api/task?id=999", "/nope"]
    codes = []
    for u in urls if m else []:
        try:
            with urllib.request.urlopen("http://%s%s" % (m.group(1), u), timeout=120) as r:
                codes.append(r.status)
        except urllib.error.HTTPError as e:
            codes.append(e.code)
    ok(m and codes[:-2] == [200] * (len(urls) - 2) and codes[-2:] == [404, 404], "baton web answers every endpoint", codes)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    ok(p.returncode == 0 and "==" not in err, "baton web: valgrind clean after a session (exit %s)" % p.returncode, err)
finally:
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB],
                   capture_output=True)
print("1..%d" % n)
sys.exit(1 if failed else 0)
