#!/usr/bin/env python3
# 48_worker_valgrind.t — a short worker session (exec + noop, drain on SIGTERM) under valgrind: no errors, no leaks.
import os
import shutil
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script

if not shutil.which("valgrind"):
    # scripts/deps.sh installs it for make check: its absence is a broken setup, not a pass.
    print("Bail out! valgrind is not installed (scripts/deps.sh installs it)")
    sys.exit(1)

import worker_helpers
# valgrind needs the plain build (the sanitizer build cannot run under it).
worker_helpers.WORKER = os.path.join(worker_helpers.ROOT, "worker", "baton-worker")
t = Tap()
db = Db("baton_worker_valgrind")
d = tmpdir("vg")
svc = write_script(os.path.join(d, "svc.sh"), "#!/bin/sh\ncat >/dev/null\necho '{\"fine\": true}'\n")
db.sql("SELECT baton.create_queue('e'); SELECT baton.create_queue('n')")
db.sql("SELECT count(*) FROM baton.enqueue_many('e', (SELECT jsonb_agg(i) FROM generate_series(1, 5) AS i))")
db.sql("SELECT count(*) FROM baton.enqueue_many('n', (SELECT jsonb_agg(i) FROM generate_series(1, 50) AS i))")
vlog = os.path.join(d, "valgrind.log")
w = Worker(db, """[worker]
poll_interval = 200ms
tick_interval = 200ms
[queue e]
handler = exec
command = %s
[queue n]
handler = noop
[queue s]
handler = sql
statement = SELECT $1
""" % svc, prefix=["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
                   "--show-leak-kinds=definite", "--log-file=" + vlog, "--child-silent-after-fork=yes"])
db.sql("SELECT baton.create_queue('s'); SELECT baton.enqueue('s', '{\"x\": 1}')")
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE state = 'succeeded'") == "56", 120),
     "exec, noop and sql tasks succeed under valgrind", w.logtext())
w.signal(signal.SIGTERM)
rc = w.proc.wait(120)
log = open(vlog).read()
t.is_(rc, 0, "valgrind reports no errors and no definite leaks (exit code 0, not 99)", log)
t.ok("ERROR SUMMARY: 0 errors" in log, "ERROR SUMMARY: 0 errors", log)
