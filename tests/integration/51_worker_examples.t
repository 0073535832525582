#!/usr/bin/env python3
# 51_worker_examples.t — the example services in worker/examples/services work as documented (exec and stream).
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import Tap, Db, Worker, wait_until, ROOT

t = Tap()
db = Db("baton_worker_examples")
ex = os.path.join(ROOT, "worker", "examples")
db.sql("SELECT baton.create_queue('inventory', max_attempts => 1); SELECT baton.create_queue('pricing')")
ok = int(db.sql("""SELECT baton.enqueue('inventory', '{"sku": "A-1", "qty": 2}')"""))
bad = int(db.sql("""SELECT baton.enqueue('inventory', '{"qty": 2}')"""))
busy = int(db.sql("""SELECT baton.enqueue('inventory', '{"sku": "A-1", "qty": 500}')"""))
p1 = int(db.sql("""SELECT baton.enqueue('pricing', '{"sku": "B-2", "qty": 3}')"""))
p2 = int(db.sql("""SELECT baton.enqueue('pricing', '{"sku": "Z-9"}')"""))
w = Worker(db, """[queue inventory]
handler = exec
command = ./services/reserve --verbose
workdir = %s
[queue pricing]
handler = stream
command = python3 ./services/pricing.py
workdir = %s
""" % (ex, ex))
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE state IN ('succeeded', 'failed')") == "5", 20),
     "the example tasks end", w.logtext())
t.is_(json.loads(db.sql("SELECT result FROM baton.tasks WHERE id = %d" % ok)), {"reserved": 2, "sku": "A-1"},
      "reserve: success with a JSON result")
t.is_(db.sql("SELECT state || ': ' || error FROM baton.tasks WHERE id = %d" % bad), "failed: reserving 2 x None (task 2, attempt 1)\npayload needs a sku",
      "reserve: exit 65 fails at once with stderr as the error")
t.is_(db.sql("SELECT state || ': ' || error FROM baton.tasks WHERE id = %d" % busy),
      "failed: reserving 500 x A-1 (task 3, attempt 1)\nwarehouse busy, try later", "reserve: exit 75 (retried until attempts run out)")
t.is_(json.loads(db.sql("SELECT result FROM baton.tasks WHERE id = %d" % p1)), {"sku": "B-2", "cents": 3000},
      "pricing.py: a stream response is the result")
t.is_(db.sql("SELECT state || ': ' || error FROM baton.tasks WHERE id = %d" % p2), "failed: unknown sku 'Z-9'",
      "pricing.py: ok:false with retry:false fails")
t.is_(w.stop(), 0, "clean exit")
