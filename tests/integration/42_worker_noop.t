#!/usr/bin/env python3
# 42_worker_noop.t — 5,000 tasks through the noop handler: all succeed, in batched claims and completions.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import Tap, Db, Worker, wait_until

t = Tap()
db = Db("baton_worker_noop")
db.sql("SELECT baton.create_queue('bench'); SELECT baton.create_queue('other')")
db.sql("SELECT count(*) FROM baton.enqueue_many('bench', (SELECT jsonb_agg(i) FROM generate_series(1, 5000) AS i))")
w = Worker(db, """[worker]
concurrency = 200
max_batch = 200
log_level = debug
[queue bench]
handler = noop
[queue other]
handler = noop
""")
done = wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE state = 'succeeded'") == "5000", 120)
t.ok(done, "all 5000 tasks succeeded", db.sql("SELECT state, count(*) FROM baton.tasks GROUP BY 1"))
t.is_(db.sql("SELECT count(*) FROM baton.tasks WHERE attempt <> 1"), "0", "each ran exactly once")
# Batching: the tasks started in far fewer claims than tasks (started_at is the claim's transaction time).
claims = int(db.sql("SELECT count(DISTINCT started_at) FROM baton._tasks"))
t.ok(claims <= 5000 / 10, "claims are batched (%d claim statements for 5000 tasks)" % claims)
finishes = int(db.sql("SELECT count(DISTINCT finished_at) FROM baton._tasks"))
t.ok(finishes <= 5000 / 10, "completions are batched (%d complete_many statements for 5000 tasks)" % finishes)
# A wake-up for the second queue arrives by NOTIFY, long before the 5 s poll.
db.sql("SELECT baton.enqueue('other')")
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE queue = 'other'") == "succeeded", 4),
     "a new task is picked up at once through LISTEN/NOTIFY")
t.is_(w.stop(), 0, "clean exit")
