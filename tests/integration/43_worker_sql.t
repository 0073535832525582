#!/usr/bin/env python3
# 43_worker_sql.t — the sql handler: the statement's effect and the task's completion commit together (exactly once).
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import Tap, Db, Worker, wait_until

t = Tap()
db = Db("baton_worker_sql")
db.sql("""SELECT baton.create_queue('ledger', max_attempts => 1);
          CREATE TABLE public.entries (task bigint PRIMARY KEY, amount int NOT NULL,
                                       txid bigint NOT NULL DEFAULT txid_current());""")
ok_ids = [int(db.sql("SELECT baton.enqueue('ledger', '{\"amount\": %d}')" % a)) for a in (5, 7, 11)]
bad_id = int(db.sql("SELECT baton.enqueue('ledger', '{\"amount\": 0}')"))
w = Worker(db, """[worker]
poll_interval = 200ms
[queue ledger]
handler = sql
statement = INSERT INTO public.entries (task, amount) VALUES ($2, 100 / ($1->>'amount')::int) RETURNING jsonb_build_object('task', task, 'amount', amount, 'txid', txid)
concurrency = 2
""")
ids = ok_ids + [bad_id]
done = wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE state IN ('succeeded', 'failed')") == "4", 30)
t.ok(done, "all tasks end", w.logtext())
for i in ok_ids:
    row = db.sql("SELECT state FROM baton.tasks WHERE id = %d" % i)
    t.is_(row, "succeeded", "task %d succeeded" % i)
t.is_(db.sql("SELECT count(*) FROM public.entries"), "3", "one row per successful task, none for the failed one")
r = json.loads(db.sql("SELECT result FROM baton.tasks WHERE id = %d" % ok_ids[0]))
t.ok(r["task"] == ok_ids[0] and r["amount"] == 20, "the first column of the first row is the result", r)
# Same transaction: the row's inserting transaction is the one that finished the task.
same = db.sql("""SELECT bool_and(e.txid = (t.xmin::text)::bigint) FROM public.entries AS e
                 JOIN baton._tasks AS t ON t.id = e.task""")
t.is_(same, "t", "the statement and baton.complete() committed in the same transaction")
t.is_(db.sql("SELECT state FROM baton.tasks WHERE id = %d" % bad_id), "failed", "a failing statement fails the task")
t.ok("division by zero" in db.sql("SELECT error FROM baton.tasks WHERE id = %d" % bad_id), "with the SQL error as the error")

# A lost lease rolls the statement back: the task is cancelled while its statement runs.
db.sql("SELECT baton.create_queue('slow')")
w.stop()
slow = int(db.sql("SELECT baton.enqueue('slow', '{}')"))
w = Worker(db, """[worker]
poll_interval = 200ms
[queue slow]
handler = sql
statement = INSERT INTO public.entries (task, amount) SELECT $2, 1 FROM pg_sleep(1.5)
""")
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % slow) == "running", 10), "slow task runs")
db.sql("SELECT baton.cancel(%d)" % slow)
time.sleep(2.5)
t.is_(db.sql("SELECT count(*) FROM public.entries WHERE task = %d" % slow), "0",
      "a task cancelled mid-statement leaves no effect (complete returned false, rolled back)")
t.is_(db.sql("SELECT state FROM baton.tasks WHERE id = %d" % slow), "cancelled", "and stays cancelled")
t.is_(w.stop(), 0, "clean exit")
