#!/usr/bin/env python3
# 40_worker_config.t — baton-worker's config file: errors with file:line, --check-config, --print-config vs docs, --version.
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, WORKER, ROOT, run

t = Tap()
d = tmpdir("conf")


def conf(text):
    p = os.path.join(d, "w%d.conf" % conf.n)
    conf.n += 1
    with open(p, "w") as f:
        f.write(text)
    return p


conf.n = 0
# File-only checks: no database to reach (--check-config also looks the queues up when it can).
OFFLINE = dict(os.environ, PGHOST="/nonexistent-baton-socket-dir")

good = conf("""# a comment
[worker]
concurrency = 32          # tasks in flight in this process
log_format = json
[queue inventory]
handler = exec            # exec | stream | http | sql | noop
command = ./services/reserve --verbose 'two words' "say \\"hi\\""
timeout = 30s
concurrency = 8
max_output = 64KiB
[queue bench]
handler = noop
[queue web]
handler = http
url = http://127.0.0.1:9/x
header = X-Token: abc
header = X-Other: def
[queue db]
handler = sql
statement = INSERT INTO t VALUES ($1) RETURNING 1
""")
rc, out, err = run([WORKER, "--config", good, "--check-config"], env=OFFLINE)
t.is_(rc, 0, "a good file passes --check-config", err)
t.ok("OK (4 queues)" in out, "--check-config says OK and counts the queues", out)

cases = [
    ("unknown key", "[worker]\nconcurrency = 2\nbogus = 1\n[queue a]\nhandler = noop\n", 3, "unknown key \"bogus\""),
    ("bad value", "[queue a]\nhandler = exec\ncommand = x\ntimeout = soon\n", 4, "timeout: \"soon\" is not a duration"),
    ("bad integer", "[worker]\nconcurrency = -3\n[queue a]\nhandler = noop\n", 2, "out of range"),
    ("missing command", "[worker]\n\n[queue a]\nhandler = exec\ntimeout = 1s\n", 3, "handler exec needs command"),
    ("unknown handler", "[queue a]\nhandler = carrier-pigeon\n", 2, "is not one of exec|stream|http|sql|noop"),
    ("missing handler", "[queue a]\ntimeout = 1s\n", 1, "missing handler"),
    ("key of another handler", "[queue a]\nhandler = noop\nurl = http://x/\n", 3, "does not apply to handler noop"),
    ("unterminated quote", "[queue a]\nhandler = exec\ncommand = echo 'oops\n", 3, "unterminated ' quote"),
    ("bad queue name", "[queue a b]\nhandler = noop\n", 1, "queue name"),
    ("no queue", "[worker]\nconcurrency = 1\n", 2, "nothing to serve"),
    ("duplicate key", "[queue a]\nhandler = noop\ntimeout = 1s\ntimeout = 2s\n", 4, "duplicate key timeout"),
]
for name, text, line, msg in cases:
    p = conf(text)
    rc, out, err = run([WORKER, "--config", p, "--check-config"], env=OFFLINE)
    t.is_(rc, 2, "%s: exit code 2" % name, err)
    t.ok(("%s:%d:" % (p, line)) in err and msg in err, "%s: message names %s:%d" % (name, os.path.basename(p), line), err)
    # The daemon itself refuses to start with the same message.
    rc2, _, err2 = run([WORKER, "--config", p])
    t.ok(rc2 == 2 and msg in err2, "%s: the daemon refuses to start" % name, err2)

rc, out, err = run([WORKER, "--config", os.path.join(ROOT, "worker", "examples", "worker.conf"), "--check-config"], env=OFFLINE)
t.is_(rc, 0, "worker/examples/worker.conf is valid", err)
rc, out, err = run([WORKER, "--config", os.path.join(d, "missing.conf"), "--check-config"], env=OFFLINE)
t.ok(rc == 2 and "cannot open" in err, "a missing file is an error", err)
rc, out, err = run([WORKER, "--bogus"])
t.is_(rc, 2, "an unknown option exits 2")
rc, out, err = run([WORKER, "--help"])
t.ok(rc == 0 and "--check-config" in out and "Exit codes" in out, "--help describes usage", out + err)

# --print-config is the option table; docs/worker.md carries the same table.
rc, out, err = run([WORKER, "--print-config"])
t.ok(rc == 0 and "| worker | `concurrency` |" in out and "| queue | `handler` |" in out, "--print-config prints the table", out)
with open(os.path.join(ROOT, "docs", "worker.md")) as f:
    doc = f.read()
m = re.search(r"<!-- print-config begin -->\n(.*?)<!-- print-config end -->", doc, re.S)
t.ok(m is not None and m.group(1) == out, "docs/worker.md has the current --print-config table",
     "regenerate with: worker/baton-worker --print-config")

# --version prints the version and checks the installed extension's version.
with open(os.path.join(ROOT, "VERSION")) as f:
    version = f.read().strip()
rc, out, err = run([WORKER, "--version"])
t.ok(rc == 0 and ("baton-worker %s" % version) in out and "matches" in out, "--version: worker and extension agree", out + err)

# An honest mismatch: a database whose installed extension reports another version.
db = Db("baton_worker_version")
db.sql("UPDATE pg_catalog.pg_extension SET extversion = '0.0.1' WHERE extname = 'baton'")
rc, out, err = run([WORKER, "--version"], env=db.env)
t.is_(rc, 3, "--version: a mismatch exits 3", err)
t.ok("version mismatch" in err and "0.0.1" in err and version in err, "--version: the mismatch is explained", err)
p = conf("[queue a]\nhandler = noop\n")
rc, out, err = run([WORKER, "--config", p], env=db.env)
t.ok(rc == 3 and "version mismatch" in err, "the daemon refuses to run against another extension version", err)
# A password in the conninfo is never printed, not even in errors.
rc, out, err = run([WORKER, "--config", p, "--dsn", "dbname=baton_worker_version password=Sekrit-123"], env=db.env)
t.ok(rc == 3 and "dbname=baton_worker_version" in err and "Sekrit" not in err,
     "the log names the database but never the password", err)
