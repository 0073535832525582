#!/usr/bin/env python3
# 83_worker_flow_limits.t — flow limits at their configured rate through real workers: a slot freed anywhere
# wakes the workers of a queue with a concurrency limit (not the next poll_interval), and a rate-limited queue
# is claimed again when its bucket holds the next token. Counted and measured as ratios, never as timings.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script

t = Tap()
d = tmpdir("flow")
os.chmod(d, 0o777)
db = Db("baton_worker_flow")
ledger = os.path.join(d, "ledger")
open(ledger, "w").close()
svc = write_script(os.path.join(d, "svc.sh"), r"""#!/bin/bash
cat >/dev/null
echo "start $$ $(date +%%s.%%N)" >> %s
sleep 0.5
echo "end $$ $(date +%%s.%%N)" >> %s
""" % (ledger, ledger))

# ---- concurrency 3: 2 workers x 10 slots, 24 tasks of 0.5 s; poll_interval 10 s, so only wake-ups can keep
# three running (before: a slot freed by a completion waited for the next poll: ~3 tasks per poll_interval).
db.sql("SELECT baton.create_queue('cc', concurrency => 3)")
conf = """[worker]
concurrency = 10
poll_interval = 10s
[queue cc]
handler = exec
command = %s
timeout = 5min
[queue rl]
handler = noop
""" % svc
db.sql("SELECT baton.create_queue('rl', rate_limit => 10)")
ws = [Worker(db, conf), Worker(db, conf)]
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.workers") == "2", 30), "two workers registered",
     ws[0].logtext())
db.sql("SELECT count(*) FROM baton.enqueue_many('cc', (SELECT jsonb_agg(i) FROM generate_series(1, 24) AS i))")
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE queue = 'cc' AND state = 'succeeded'") == "24", 180),
     "the 24 tasks of the limited queue succeed", ws[0].logtext()[-3000:])
ev = []
for line in open(ledger):
    kind, pid, ts = line.split()
    ev.append((float(ts), 1 if kind == "start" else -1))
ev.sort()
cur = peak = 0
for _, delta in ev:
    cur += delta
    peak = max(peak, cur)
starts = [ts for ts, k in ev if k == 1]
ends = [ts for ts, k in ev if k == -1]
busy = sum(ends) - sum(starts)          # total task-seconds
span = max(ends) - min(starts)
t.ok(peak <= 3, "never more than 3 at once across both workers (peak %d)" % peak)
t.ok(busy / span >= 1.2, "on average close to 3 run at once (%.2f task-seconds per second; ~0.3 when a freed slot waits for the poll)" % (busy / span),
     "busy %.2f s over %.2f s" % (busy, span))

# ---- rate 10/s with the same 2 workers: 10 +- 1 per second sustained, never above.
n = 80
db.sql("SELECT count(*) FROM baton.enqueue_many('rl', (SELECT jsonb_agg(i) FROM generate_series(1, %d) AS i))" % n)
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE queue = 'rl' AND state = 'succeeded'") == str(n), 120),
     "the %d rate-limited tasks succeed" % n, ws[0].logtext()[-3000:])
ts = [float(x) for x in db.sql("SELECT extract(epoch FROM started_at) FROM baton.tasks WHERE queue = 'rl' ORDER BY started_at").split()]
# The bucket starts full (10 tokens): skip the first second, then the rate is the bucket's refill rate.
steady = [x for x in ts if x >= ts[0] + 1.0]
rate = (len(steady) - 1) / (steady[-1] - steady[0])
t.ok(9.0 <= rate <= 11.0, "sustained rate %.2f tasks/s for a limit of 10/s (2/s before: one bucket per poll_interval)" % rate)
worst = max(sum(1 for y in steady if x <= y < x + 1.0) for x in steady)
t.ok(worst <= 12, "never above the limit: at most %d (10, +2 for the window edges) in any one-second window after the first" % worst)
for w in ws:
    t.is_(w.stop(), 0, "clean exit")
