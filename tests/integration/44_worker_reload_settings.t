#!/usr/bin/env python3
# 44_worker_reload_settings.t — after SIGHUP a task already running keeps the settings it started with (its
# timeout), while tasks started afterwards get the new ones (command, timeout): tasks share one copy of their
# queue's settings per reload.
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script

t = Tap()
db = Db("baton_worker_reload_settings")
d = tmpdir("reload")
go = os.path.join(d, "go")
old = write_script(os.path.join(d, "old.sh"), """#!/bin/sh
cat >/dev/null
while [ ! -e %s ]; do sleep 0.05; done
echo '{"v": 1}'
""" % go)
new = write_script(os.path.join(d, "new.sh"), """#!/bin/sh
cat >/dev/null
case "$(cat %s 2>/dev/null)" in slow) sleep 5 ;; esac
echo '{"v": 2}'
""" % os.path.join(d, "mode"))
db.sql("SELECT baton.create_queue('r', max_attempts => 1)")
conf = """[worker]
concurrency = 4
poll_interval = 100ms
[queue r]
handler = exec
command = %s
timeout = %s
"""
first = int(db.sql("SELECT baton.enqueue('r', '{\"n\": 1}')"))
w = Worker(db, conf % (old, "30s"))


def state(i):
    return db.sql("SELECT state || ' ' || coalesce(result::text, '') || coalesce(error, '') FROM baton.tasks "
                  "WHERE id = %d" % i)


t.ok(wait_until(lambda: state(first).startswith("running"), 10), "the first task runs with the old settings",
     w.logtext())
w.rewrite(conf % (new, "1s"))
w.signal(signal.SIGHUP)
t.ok(wait_until(lambda: "config reloaded" in w.logtext(), 5), "SIGHUP reloads", w.logtext())
second = int(db.sql("SELECT baton.enqueue('r', '{\"n\": 2}')"))
t.ok(wait_until(lambda: state(second) == 'succeeded {"v": 2}', 10), "a task started after the reload runs the new command",
     w.logtext())
with open(os.path.join(d, "mode"), "w") as f:
    f.write("slow")
third = int(db.sql("SELECT baton.enqueue('r', '{\"n\": 3}')"))
t.ok(wait_until(lambda: state(third).startswith("failed"), 10), "and has the new 1 s timeout", state(third))
t.ok("timed out after 1s" in state(third), "(it timed out)", state(third))
t.ok(state(first).startswith("running"), "the first task, older than the new timeout, still runs on its 30 s",
     state(first) + "\n" + w.logtext())
open(go, "w").close()
t.ok(wait_until(lambda: state(first) == 'succeeded {"v": 1}', 10), "and completes with the old command's result",
     state(first))
t.is_(w.stop(), 0, "clean exit")
