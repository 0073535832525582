#!/usr/bin/env python3
# 85_worker_stream_tail.t — the stream handler's latency tail came from baton.tick() sharing the main session:
# a completion that arrived while a tick ran waited for it. The tick now has a session of its own. Counted, not
# timed: while a tick is held up (a lock on the cron table it reads), 200 stream tasks are claimed, answered and
# completed all the same; on the shared session none could be.
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script

t = Tap()
d = tmpdir("tail")
db = Db("baton_worker_tail")
co = write_script(os.path.join(d, "co.py"), r'''#!/usr/bin/env python3
import json, sys
for line in sys.stdin:
    req = json.loads(line)
    if "cancel" in req:
        continue
    sys.stdout.write(json.dumps({"id": req["id"], "attempt": req["attempt"], "ok": True, "result": 1}) + "\n")
    sys.stdout.flush()
''')
db.sql("SELECT baton.create_queue('s')")
w = Worker(db, """[worker]
tick = on
tick_interval = 50ms
poll_interval = 60s
[queue s]
handler = stream
command = %s
""" % co)
t.ok(wait_until(lambda: "calling tick() every 50 ms" in w.logtext() or db.sql("SELECT count(*) FROM baton.workers") == "1", 30),
     "worker up", w.logtext())
# Warm the co-process up.
i = int(db.sql("SELECT baton.enqueue('s')"))
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % i) == "succeeded", 30), "first task", w.logtext())

# Hold up every tick: _cron_tick reads baton._schedules, which this session locks.
locker = subprocess.Popen(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"], env=db.env, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
locker.stdin.write("BEGIN;\nLOCK TABLE baton._schedules IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n")
locker.stdin.flush()
t.ok(locker.stdout.readline().strip() == "locked", "a session holds the cron table")
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND wait_event_type = 'Lock' AND query LIKE '%baton.tick()%'") == "1", 30),
     "the worker's tick waits for it")
n = 200
db.sql("SELECT count(*) FROM baton.enqueue_many('s', (SELECT jsonb_agg(i) FROM generate_series(1, %d) AS i))" % n)
done = wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE state = 'succeeded'") == str(n + 1), 60)
still = db.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
               "AND wait_event_type = 'Lock' AND query LIKE '%baton.tick()%'")
t.ok(done, "all %d answers are completed while a tick is held up (none waits for the tick)" % n,
     db.sql("SELECT count(*) FROM baton.tasks WHERE state = 'succeeded'"))
t.is_(still, "1", "and the tick was still waiting meanwhile")
locker.stdin.write("COMMIT;\n")
locker.stdin.close()
locker.wait(30)
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND wait_event_type = 'Lock' AND query LIKE '%baton.tick()%'") == "0", 30),
     "the tick goes on once the lock is gone")
t.ok("tick failed" not in w.logtext(), "no tick failed", w.logtext())
t.is_(w.stop(), 0, "clean exit")
