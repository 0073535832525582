#!/usr/bin/env python3
# 06_worker_version.t — which extension versions a baton-worker runs against: the same major.minor, any patch.
#
# The installed version is what pg_extension says; a throwaway database gets
# other versions written into its catalog row, and the worker's two checks
# (--version, and the daemon at connect) must agree on each.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import Tap, Db, run, tmpdir, WORKER, ROOT

t = Tap()
with open(os.path.join(ROOT, "VERSION")) as f:
    version = f.read().strip()
major, minor, patch = (int(x) for x in version.split("."))
db = Db("baton_worker_versions")
conf = os.path.join(tmpdir("version"), "worker.conf")
with open(conf, "w") as f:
    f.write("[worker]\npoll_interval = 100ms\n[queue v]\nhandler = noop\n")
db.sql("SELECT baton.create_queue('v')")

cases = [
    (version, True, "its own version"),
    ("%d.%d.%d" % (major, minor, patch + 7), True, "a later patch release of its major.minor"),
    ("%d.%d.%d" % (major, minor + 1, 0), False, "the next minor release"),
    ("%d.%d.%d" % (major + 1, minor, patch), False, "another major release"),
    ("0.1.0" if version != "0.1.0" else "0.0.9", False, "an older minor release"),
    ("%d.%d" % (major, minor), False, "a version string without a patch number"),
    ("%d.%d.%dbeta" % (major, minor, patch), False, "a version string with a suffix"),
]
if patch > 0:
    cases.append(("%d.%d.%d" % (major, minor, patch - 1), True, "an earlier patch release of its major.minor"))

for installed, accepted, what in cases:
    db.sql("UPDATE pg_catalog.pg_extension SET extversion = '%s' WHERE extname = 'baton'" % installed)
    rc, out, err = run([WORKER, "--version"], env=db.env)
    t.is_(rc, 0 if accepted else 3, "--version with extension %s (%s): %s" % (installed, what, "accepted" if accepted else "refused"), out + err)
    if not accepted:
        t.ok("version mismatch" in err and "runs against %d.%d.x only" % (major, minor) in err,
             "the refusal says which versions the worker runs against", err)
    if accepted:
        # The daemon connects, registers and works; a task enqueued now succeeds.
        tid = db.sql("SELECT baton.enqueue('v')")
        rc, out, err = run(["timeout", "-s", "TERM", "5", WORKER, "--config", conf], env=db.env)
        t.ok(db.sql("SELECT state FROM baton.tasks WHERE id = %s" % tid) == "succeeded",
             "the daemon runs against %s and completes a task" % installed, err)
    else:
        rc, out, err = run([WORKER, "--config", conf], env=db.env)
        t.ok(rc == 3 and "version mismatch" in err, "the daemon refuses %s: exit 3" % installed, err)
db.sql("UPDATE pg_catalog.pg_extension SET extversion = '%s' WHERE extname = 'baton'" % version)
