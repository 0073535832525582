#!/usr/bin/env python3
# 59_worker_asan.t — builds baton-worker-asan (-fsanitize=address,undefined) and reruns the worker integration
# tests that start workers through worker_helpers.py against it: one TAP line per rerun file, ok only when the
# file passed and no sanitizer wrote a report.
#
# Reports cannot be swallowed: every sanitizer writes to log_path files in a directory of ours (a worker's
# stderr may be a log file nobody reads, or the worker may be killed before its exit code is looked at), and
# any file there fails the rerun; halt_on_error/abort_on_error also make the first error fatal.
# Not rerun: 48_worker_valgrind.t (it runs the plain build under valgrind on purpose) and this file. The whole
# set takes about as long as in the plain run (the tests mostly wait on tasks), roughly a minute.
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import ROOT, tmpdir

here = os.path.dirname(os.path.abspath(__file__))
not_rerun = {"48_worker_valgrind.t", os.path.basename(__file__)}   # valgrind under ASan; itself
files = sorted(f for f in glob.glob(os.path.join(here, "*.t"))
               if os.path.basename(f) not in not_rerun and "worker_helpers" in open(f).read())

# A compiler without sanitizer support fails this test (it must prove the worker clean), as does a build that fails.
cc = os.environ.get("CC", "cc")
probe = tempfile.mkdtemp(prefix="baton-asan-probe-")
with open(os.path.join(probe, "p.c"), "w") as f:
    f.write("int main(void) { return 0; }\n")
r = subprocess.run([cc, "-fsanitize=address,undefined", "-o", os.path.join(probe, "p"), os.path.join(probe, "p.c")],
                   capture_output=True, text=True)
if r.returncode == 0:
    r = subprocess.run([os.path.join(probe, "p")], capture_output=True, text=True)
shutil.rmtree(probe, True)
if r.returncode != 0:
    print("Bail out! %s cannot build or run -fsanitize=address,undefined programs: %s"
          % (cc, (r.stderr.strip().splitlines() or ["?"])[-1]))
    sys.exit(1)

print("1..%d" % (len(files) + 1), flush=True)
# One line on stderr (prove shows it) so a long quiet minute says what it is doing.
print("59_worker_asan.t: building baton-worker-asan, then rerunning %d worker tests under ASan+UBSan (several minutes)"
      % len(files), file=sys.stderr, flush=True)
b = subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "worker"), "asan"], capture_output=True, text=True)
binary = os.path.join(ROOT, "worker", "baton-worker-asan")
if b.returncode != 0 or not os.access(binary, os.X_OK):
    print("not ok 1 - make -C worker asan")
    for line in (b.stdout + b.stderr).splitlines()[-30:]:
        print("# " + line)
    for i, f in enumerate(files, 2):
        print("not ok %d - %s under ASan+UBSan # no sanitizer build" % (i, os.path.basename(f)))
    sys.exit(0)
print("ok 1 - make -C worker asan", flush=True)

logs = tmpdir("asan")
for i, f in enumerate(files, 2):
    name = os.path.basename(f)
    print("# rerunning %s with baton-worker-asan..." % name, flush=True)
    rdir = os.path.join(logs, name)
    os.mkdir(rdir)
    env = dict(os.environ, BATON_WORKER=binary,
               ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:log_path=%s/asan" % rdir,
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=%s/ubsan" % rdir,
               LSAN_OPTIONS="log_path=%s/lsan" % rdir)
    try:
        p = subprocess.run([f], env=env, capture_output=True, text=True, timeout=300)
        out, rc = p.stdout, p.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        rc = "timeout"
    reports = sorted(glob.glob(os.path.join(rdir, "*")))
    # A rerun that skips proved nothing under the sanitizers: the plan check below fails it
    # (a skip prints the plan 1..0 and no ok line).
    plan = re.search(r"^1\.\.(\d+)\s*$", out, re.M)
    oks = len(re.findall(r"^ok \d+", out, re.M))
    bad = re.findall(r"^not ok .*", out, re.M)
    good = rc == 0 and plan and int(plan.group(1)) == oks > 0 and not bad and not reports
    print("%s %d - %s under ASan+UBSan" % ("ok" if good else "not ok", i, name), flush=True)
    if not good:
        print("# exit: %s, plan: %s, ok: %d" % (rc, plan.group(1) if plan else "none", oks))
        for line in bad[:20]:
            print("# " + line)
        for rep in reports[:3]:
            print("# sanitizer report %s:" % os.path.basename(rep))
            for line in open(rep, errors="replace").read().splitlines()[:40]:
                print("#   " + line)
