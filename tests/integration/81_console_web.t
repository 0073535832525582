#!/usr/bin/env python3
# 81_console_web.t — `baton web` in a real browser (headless chromium, tests/browser/dashboard.test.js) plus its listening rules.
# Screenshots of the main pages go to tests/output/81_console_web/ (or $BATON_TEST_OUTPUT/81_console_web).
import os
import re
import secrets
import subprocess
import sys
import urllib.error
import urllib.request

ROOT = os.environ.get("BATON_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BATON = os.environ.get("BATON_CLI", os.path.join(ROOT, "console", "baton"))
NODE_MODULES = os.environ.get("BATON_NODE_MODULES", os.path.join(ROOT, ".cache", "node", "node_modules"))
SHOTS = os.path.join(os.environ.get("BATON_TEST_OUTPUT", os.path.join(ROOT, "tests", "output")), "81_console_web")
DB = "console_web_%d" % os.getpid()
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
    sys.stdout.flush()


def start_web(*args):
    """Starts baton web on a free port (port 0) and returns (process, base URL)."""
    env = dict(os.environ, PGDATABASE=DB)
    p = subprocess.Popen([BATON, "web", "--listen", "127.0.0.1:0"] + list(args), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    line = p.stdout.readline()
    m = re.search(r"http://(127\.0\.0\.1:\d+)/", line)
    if not m:
        p.kill()
        raise RuntimeError("baton web did not start: %r %s" % (line, p.stderr.read()))
    return p, "http://" + m.group(1)


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def status(url, host=None):
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


if not os.path.isdir(os.path.join(NODE_MODULES, "puppeteer-core")):
    # Not a skip: the dependency is part of the test setup (scripts/deps.sh installs it).
    print("1..1")
    print("not ok 1 - puppeteer-core is installed in %s (run scripts/deps.sh)" % NODE_MODULES)
    sys.exit(1)

subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", "CREATE DATABASE %s TEMPLATE baton_template" % DB],
               check=True, capture_output=True)
procs = []
try:
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", DB, "-f",
                    os.path.join(ROOT, "tests/integration/lib/console_seed.sql")], check=True, capture_output=True)

    # Listening rules, without a browser.
    r = subprocess.run([BATON, "web", "--listen", "0.0.0.0:0"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PGDATABASE=DB))
    ok(r.returncode == 2 and "--token" in r.stderr, "listening beyond loopback without a token: exit 2", r.stderr)
    p, url = start_web()
    procs.append(p)
    st, body, headers = status(url + "/")
    ok(st == 200 and "<title>baton</title>" in body, "loopback without a token serves the dashboard", st)
    ok("script-src 'self'" in headers.get("Content-Security-Policy", ""), "responses carry a strict CSP", headers)
    st, body, _ = status(url + "/api/overview", host="evil.example:80")
    ok(st == 403, "a foreign Host header is refused (DNS rebinding)", st)
    st, body, _ = status(url + "/api/tasks?state=%27;DROP%20TABLE%20x")
    ok(st == 400, "a bad filter value is refused, not run", st)
    stop(p)
    procs.remove(p)

    # The browser session runs against a server that requires a token.
    token = secrets.token_hex(16)
    p, url = start_web("--token", token)
    procs.append(p)
    env = dict(os.environ, PGDATABASE=DB, BATON_URL=url, BATON_TOKEN=token, BATON_SHOTS=SHOTS,
               BATON_NODE_MODULES=NODE_MODULES)
    r = subprocess.run(["node", os.path.join(ROOT, "tests/browser/dashboard.test.js")], capture_output=True, text=True,
                       env=env, timeout=1500)
    for line in r.stdout.splitlines():
        m = re.match(r"(not ok|ok) \d+ - (.*)", line)
        if m:
            ok(m.group(1) == "ok", "browser: " + m.group(2))
        elif line.startswith("#"):
            print(line)
    ok(r.returncode == 0, "the browser test ran to its end", r.stderr[-2000:])
    shots = sorted(os.listdir(SHOTS)) if os.path.isdir(SHOTS) else []
    ok(all(s + ".png" in shots for s in ("overview", "tasks", "task", "runs", "run", "events", "subscriptions", "trace")),
       "screenshots of the main pages are in " + SHOTS, shots)
finally:
    for p in procs:
        stop(p)
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB],
                   capture_output=True)
print("1..%d" % n)
sys.exit(1 if failed else 0)
