#!/usr/bin/env python3
# 41_worker_exec.t — the exec handler: results, exit codes (0 ok, 65 failed at once, 75 / any other / a signal
# = retried until the attempts are spent), timeouts killing the process group,
# stderr tail, output cap; registration in baton.workers.
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script, pid_alive

t = Tap()
db = Db("baton_worker_exec")
d = tmpdir("exec")

# One script, many behaviours chosen by the payload's "do".
svc = write_script(os.path.join(d, "svc.py"), r'''#!/usr/bin/env python3
import json, os, subprocess, sys, time
task = json.load(sys.stdin)
p = task["payload"]
do = p.get("do")
if do == "echo":
    print(json.dumps({"got": task}))
elif do == "text":
    print("plain words, not JSON")
elif do == "empty":
    pass
elif do == "fail":
    sys.stderr.write("x" * 6000 + "\nthe last line says why\n")
    sys.exit(3)
elif do == "retry":
    sys.stderr.write("busy, later\n")
    sys.exit(75)
elif do == "dataerr":
    sys.stderr.write("the sku is not a sku\n")
    sys.exit(65)
elif do == "raise":
    raise RuntimeError("transient network error")
elif do == "signal":
    os.kill(os.getpid(), 9)
elif do == "sleep":
    # A grandchild in the same process group must die with the task too.
    g = subprocess.Popen(["sleep", "300"])
    with open(p["pidfile"], "w") as f:
        f.write("%d %d\n" % (os.getpid(), g.pid))
    time.sleep(300)
elif do == "big":
    sys.stdout.write("y" * 100000)
elif do == "longtext":
    sys.stdout.write("z" * 1000)
elif do == "binary":
    sys.stdout.buffer.write(b"ok\xff\xfe\x00end")
elif do == "argv":
    print(json.dumps(sys.argv[1:] + [os.environ.get("PGPASSWORD", "no password")]))
''')

db.sql("SELECT baton.create_queue('work', max_attempts => 2, backoff_base => '0', backoff_cap => '0')")
conf = """[worker]
concurrency = 8
poll_interval = 200ms
kill_grace = 300ms
[queue work]
handler = exec
command = %s --flag 'two words' "say \\"hi\\"" back\\ slash
timeout = 15s
max_output = 4KiB
""" % svc

ids = {}
for do in ["echo", "text", "empty", "fail", "retry", "big", "binary", "argv", "longtext", "dataerr", "raise", "signal"]:
    ids[do] = int(db.sql("SELECT baton.enqueue('work', '{\"do\": \"%s\"}')" % do))
pidfile = os.path.join(d, "sleep.pids")
ids["sleep"] = int(db.sql("SELECT baton.enqueue('work', '{\"do\": \"sleep\", \"pidfile\": \"%s\"}', max_attempts => 1)" % pidfile))

w = Worker(db, conf, env_extra={"PGPASSWORD": "not-for-children"})


def state(i):
    return db.sql("SELECT state FROM baton.tasks WHERE id = %d" % i)


done = wait_until(lambda: all(state(i) in ("succeeded", "failed") for i in ids.values()), 120)
t.ok(done, "every task ends", w.logtext())

r = json.loads(db.sql("SELECT result FROM baton.tasks WHERE id = %d" % ids["echo"]))
task = r["got"]
t.is_(sorted(task.keys()), sorted(["id", "queue", "attempt", "max_attempts", "payload", "run_id", "step", "correlation_id"]),
      "the task object on stdin has the pinned keys")
t.ok(task["id"] == ids["echo"] and task["queue"] == "work" and task["attempt"] == 1 and task["payload"] == {"do": "echo"},
     "stdin carries id, queue, attempt and payload; stdout JSON is the result", r)
t.is_(state(ids["echo"]), "succeeded", "exit 0 succeeds")
t.is_(db.sql("SELECT state || ' ' || attempt || ' ' || error FROM baton.tasks WHERE id = %d" % ids["text"]),
      "failed 1 exec: stdout is not valid JSON: plain words, not JSON",
      "non-JSON stdout fails the task without retry (max_attempts 2), the error shows the output")
t.is_(db.sql("SELECT result IS NULL FROM baton.tasks WHERE id = %d" % ids["empty"]), "t", "empty stdout is a NULL result")

t.is_(db.sql("SELECT state || ' ' || error FROM baton.tasks WHERE id = %d" % ids["binary"]),
      "failed exec: stdout is not valid JSON: ok\ufffd\ufffd\ufffdend",
      "binary stdout fails too; invalid UTF-8 and NUL bytes become U+FFFD in the error")
t.ok(w.proc.poll() is None, "the worker keeps running after malformed and oversized output", w.logtext())
t.is_(json.loads(db.sql("SELECT result FROM baton.tasks WHERE id = %d" % ids["argv"])),
      ["--flag", "two words", 'say "hi"', "back slash", "no password"],
      "command is split into argv without a shell, with quoting; PGPASSWORD is not passed on")
t.is_(db.sql("SELECT state || ' ' || attempt FROM baton.tasks WHERE id = %d" % ids["fail"]), "failed 2",
      "another exit code (3) is retried until max_attempts (2)")
t.is_(db.sql("SELECT state || ' ' || attempt || ' ' || error FROM baton.tasks WHERE id = %d" % ids["dataerr"]),
      "failed 1 the sku is not a sku", "exit 65 (EX_DATAERR) fails at once, without retry, stderr as the error")
t.ok(db.sql("SELECT state || ' ' || attempt FROM baton.tasks WHERE id = %d" % ids["raise"]) == "failed 2"
     and "transient network error" in db.sql("SELECT error FROM baton.tasks WHERE id = %d" % ids["raise"]),
     "an uncaught exception (exit 1) is retried until max_attempts, the traceback tail is the error")
t.is_(db.sql("SELECT state || ' ' || attempt || ' ' || error FROM baton.tasks WHERE id = %d" % ids["signal"]),
      "failed 2 killed by signal 9", "death by a signal the worker did not send is retried until max_attempts")
err = db.sql("SELECT error FROM baton.tasks WHERE id = %d" % ids["fail"])
t.ok(err.endswith("the last line says why") and len(err.encode()) <= 4096, "the error is the stderr tail (at most 4 KiB)",
     "%d bytes: ...%s" % (len(err), err[-80:]))

t.is_(db.sql("SELECT state || ' ' || attempt FROM baton.tasks WHERE id = %d" % ids["retry"]), "failed 2",
      "exit 75 is retried until max_attempts")
t.is_(db.sql("SELECT error FROM baton.tasks WHERE id = %d" % ids["retry"]), "busy, later", "exit 75 keeps stderr as the error")

t.is_(state(ids["big"]), "failed", "stdout beyond max_output fails the task")
t.is_(db.sql("SELECT attempt || ' ' || error FROM baton.tasks WHERE id = %d" % ids["big"]),
      "1 output exceeds max_output (4096 bytes)", "without retry, and says why")
t.is_(db.sql("SELECT state || ' ' || error FROM baton.tasks WHERE id = %d" % ids["longtext"]),
      "failed exec: stdout is not valid JSON: " + "z" * 200, "the error quotes only the first 200 bytes of bad stdout")

t.is_(state(ids["sleep"]), "failed", "a task past its timeout fails (no attempts left)")
t.ok("timed out" in db.sql("SELECT error FROM baton.tasks WHERE id = %d" % ids["sleep"]), "with a timeout error")
pids = [int(x) for x in open(pidfile).read().split()]
gone = wait_until(lambda: not any(pid_alive(p) for p in pids), 10)
t.ok(gone, "the timed-out child and its grandchild (the process group) are gone", pids)

# Registration: the worker is listed while it runs and removed at clean exit.
row = db.sql("SELECT host || ' ' || pid || ' ' || queues::text || ' ' || version FROM baton.workers")
t.ok(row.endswith(" %d {work} %s" % (w.proc.pid, open(os.path.join(os.environ["BATON_ROOT"], "VERSION")).read().strip())),
     "the worker is registered in baton.workers with host, pid, queues and version", row)
wid = db.sql("SELECT worker FROM baton.workers")
t.ok(wid.split(":")[1] == str(w.proc.pid), "the worker id is host:pid:random", wid)
# Someone removes the row: worker_seen notices and the worker registers again.
db.sql("SELECT baton.unregister_worker('%s')" % wid)
rc = w.stop()
t.is_(rc, 0, "SIGTERM with nothing in flight exits 0", w.logtext())
t.is_(db.sql("SELECT count(*) FROM baton.workers"), "0", "a clean exit unregisters the worker")
log = w.logtext()
t.ok("password" not in log, "no password in the log")

# The same with an id from the config, and seen_interval short enough to see re-registration.
w = Worker(db, conf.replace("[worker]", "[worker]\nid = fixed-id\nseen_interval = 200ms"))
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.workers WHERE worker = 'fixed-id'") == "1", 10),
     "a configured id is used")
db.sql("SELECT baton.unregister_worker('fixed-id')")
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.workers WHERE worker = 'fixed-id'") == "1", 10),
     "a worker whose row vanished registers again (worker_seen returned NULL)", w.logtext())
t.is_(w.stop(), 0, "clean exit")

# A task arriving while the worker idles (no tick, slow poll) runs right away: NOTIFY wakes the claim and the
# child's pipes are watched from the start (it would otherwise wait for the next timer, here 60 s).
db.sql("SELECT baton.create_queue('idle')")
w = Worker(db, "[worker]\ntick = off\npoll_interval = 60s\nseen_interval = 60s\n[queue idle]\nhandler = exec\ncommand = %s\n" % svc)
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.workers") == "1", 10), "idle worker registered")
iid = int(db.sql("SELECT baton.enqueue('idle', '{\"do\": \"empty\"}')"))
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % iid) == "succeeded", 8),
     "a task enqueued while the worker idles succeeds without waiting for a timer", w.logtext())
t.is_(w.stop(), 0, "clean exit")

# A queue's own concurrency bounds its tasks in flight, while another queue uses the rest of the worker's slots.
running = os.path.join(d, "running")
os.makedirs(running, exist_ok=True)
par = write_script(os.path.join(d, "par.sh"), """#!/bin/bash
cat >/dev/null
touch %s/$$
n=$(ls %s | wc -l)
sleep 0.3
rm -f %s/$$
echo $n
""" % (running, running, running))
db.sql("SELECT baton.create_queue('narrow'); SELECT baton.create_queue('wide')")
db.sql("SELECT count(*) FROM baton.enqueue_many('narrow', (SELECT jsonb_agg(i) FROM generate_series(1, 8) AS i))")
db.sql("SELECT count(*) FROM baton.enqueue_many('wide', (SELECT jsonb_agg(i) FROM generate_series(1, 8) AS i))")
w = Worker(db, """[worker]
concurrency = 6
[queue narrow]
handler = exec
command = %s
concurrency = 2
[queue wide]
handler = noop
""" % par)
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE queue IN ('narrow', 'wide') AND state = 'succeeded'") == "16", 30),
     "both queues drain", w.logtext())
t.ok(int(db.sql("SELECT max((result #>> '{}')::int) FROM baton.tasks WHERE queue = 'narrow'")) <= 2,
     "never more than the queue's concurrency (2) of its tasks at once",
     db.sql("SELECT string_agg(result #>> '{}', ',') FROM baton.tasks WHERE queue = 'narrow'"))
t.is_(w.stop(), 0, "clean exit")
