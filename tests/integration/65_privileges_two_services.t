#!/usr/bin/env python3
# 65_privileges_two_services.t — two services, each its own login role, queue and topics, with a workflow and a
# choreography crossing them, served by real baton-worker processes connecting as their own roles: everything
# runs, each role sees only its part, and a worker whose role lacks "work" on a queue refuses to start (exit 2).
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script, run, WORKER

t = Tap()
db = Db("baton_priv_services")
d = tmpdir("privileges")
tag = str(os.getpid())
A, B, C = "svc_orders_" + tag, "svc_billing_" + tag, "svc_intruder_" + tag

# Roles are cluster-wide: made here with this process's id, dropped at the end.
db.sql("""
CREATE ROLE {A} LOGIN IN ROLE baton_producer, baton_worker;
CREATE ROLE {B} LOGIN IN ROLE baton_producer, baton_worker;
CREATE ROLE {C} LOGIN IN ROLE baton_worker;
""".format(A=A, B=B, C=C))


def drop_roles():
    db.drop()
    for r in (A, B, C):
        run(["psql", "-X", "-q", "-d", "postgres", "-c", "DROP ROLE IF EXISTS %s" % r], env=db.env)


import atexit  # noqa: E402  (registered after Db's own drop, so it runs first)
atexit.register(drop_roles)

db.sql("""
SELECT baton.create_queue(q, backoff_base => '0', backoff_cap => '0') FROM unnest('{{orders,billing}}'::text[]) AS q;
-- orders: service A's; billing: service B's
SELECT baton.grant_queue('orders', '{A}', p) FROM unnest('{{enqueue,work,read}}'::text[]) AS p;
SELECT baton.grant_queue('billing', '{B}', p) FROM unnest('{{enqueue,work,read}}'::text[]) AS p;
SELECT baton.grant_topic('order.#', '{A}', p) FROM unnest('{{publish,read}}'::text[]) AS p;
SELECT baton.grant_topic('billing.#', '{B}', p) FROM unnest('{{publish,read}}'::text[]) AS p;
-- orchestration crossing both: A starts checkout, whose bill step runs on B's queue
SELECT baton.define_workflow('checkout', '{{"steps": {{
    "reserve": {{"queue": "orders"}},
    "bill":    {{"queue": "billing", "after": ["reserve"]}},
    "done":    {{"kind": "publish", "topic": "order.checked_out", "payload": {{"ok": true}}, "after": ["bill"]}}}}}}');
SELECT baton.grant_workflow('checkout', '{A}', p) FROM unnest('{{start,read}}'::text[]) AS p;
-- choreography crossing both: order.placed -> billing (B), billing.done -> orders (A)
SELECT baton.subscribe('billing-hears-orders', 'order.placed', queue => 'billing');
SELECT baton.subscribe('orders-hears-billing', 'billing.done', queue => 'orders');
""".format(A=A, B=B))

# A's handler answers with its secret; B's emits billing.done for a delivered order.placed.
svc_a = write_script(os.path.join(d, "a.sh"), """#!/bin/sh
cat >/dev/null
echo '{"by": "orders", "secret": "A-card-4242"}'
""")
svc_b = write_script(os.path.join(d, "b.sh"), """#!/bin/sh
if grep -q order.placed; then
  echo '{"by": "billing", "emit": [{"topic": "billing.done", "payload": {"invoice": "B-inv-7"}}]}'
else
  echo '{"by": "billing", "invoice": "B-inv-7"}'
fi
""")
conf = """[worker]
id = %s
concurrency = 2
tick = off
poll_interval = 100ms
[queue %s]
handler = exec
command = %s
timeout = 30s
"""
wa = Worker(db, conf % ("w-orders", "orders", svc_a), env_extra={"PGUSER": A})
wb = Worker(db, conf % ("w-billing", "billing", svc_b), env_extra={"PGUSER": B})


def as_role(role, q):
    env = dict(db.env)
    env["PGUSER"] = role
    rc, out, err = run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", q], env=env)
    return out.strip() if rc == 0 else "ERROR: " + err.strip()


corr = "eeeeeeee-0000-4000-8000-0000000000c1"
run_id = as_role(A, "SELECT baton.start('checkout', '{\"order\": \"o-1\"}', correlation_id => '%s')" % corr)
t.ok(run_id.isdigit(), "service A starts the checkout workflow as its own role", run_id)
ev = as_role(A, "SELECT baton.publish('order.placed', '{\"order\": \"o-1\"}', correlation_id => '%s')" % corr)
t.ok(ev.isdigit(), "service A publishes order.placed", ev)


def run_state():
    return db.sql("SELECT state FROM baton.runs WHERE id = %s" % run_id)


def all_done():
    return db.sql("SELECT count(*) FILTER (WHERE state <> 'succeeded') || '/' || count(*) FROM baton.tasks")


t.ok(wait_until(lambda: run_state() == "succeeded", 60), "the workflow crossing both services succeeds",
     run_state() + "\n" + wa.logtext() + wb.logtext())
# order.placed -> billing task (B) -> billing.done -> orders task (A): four tasks in all with the run's two
t.ok(wait_until(lambda: all_done() == "0/4", 60), "the choreography crossing both services runs to the end",
     all_done() + "\n" + db.sql("SELECT string_agg(queue || ':' || state, ' ') FROM baton.tasks") + "\n"
     + wa.logtext() + wb.logtext())

# Each role sees only its part.
t.is_(as_role(A, "SELECT string_agg(DISTINCT queue, ',') FROM baton.tasks"), "orders", "A's tasks view shows only orders")
t.is_(as_role(B, "SELECT string_agg(DISTINCT queue, ',') FROM baton.tasks"), "billing", "B's tasks view shows only billing")
t.is_(as_role(B, "SELECT count(*) FROM baton.tasks WHERE result::text LIKE '%A-card%'"), "0", "B never sees A's results")
t.is_(as_role(A, "SELECT count(*) FROM baton.tasks WHERE result::text LIKE '%B-inv%'"), "0", "A never sees B's results")
t.is_(as_role(A, "SELECT count(*) FROM baton.runs WHERE workflow = 'checkout'"), "1", "A sees its run")
t.is_(as_role(B, "SELECT count(*) FROM baton.runs"), "0", "B sees no run of A's workflow")
t.is_(as_role(B, "SELECT string_agg(DISTINCT split_part(topic, '.', 1), ',') FROM baton.events"), "billing",
      "B sees only billing.# events")
t.is_(as_role(A, "SELECT string_agg(DISTINCT split_part(topic, '.', 1), ',') FROM baton.events"), "order",
      "A sees only order.# events")
t.is_(as_role(B, "SELECT count(*) FROM baton.queue_stats WHERE queue = 'orders'"), "0", "B gets no counts of orders")
tb = as_role(B, "SELECT count(*) FILTER (WHERE state = 'hidden') || '/' || count(*) FROM baton.trace('%s')" % corr)
t.ok(tb.split("/")[0] not in ("", "0") and as_role(B, "SELECT count(*) FROM baton.trace('%s') AS x WHERE x::text LIKE '%%A-card%%'" % corr) == "0",
     "B's trace of the shared correlation id marks A's part hidden and shows none of its results (%s hidden)" % tb, tb)
t.ok("permission denied" in as_role(B, "SELECT baton.run_status(%s)" % run_id), "B may not read A's run")
t.ok("permission denied" in as_role(B, "SELECT baton.enqueue('orders', '{}')"), "B may not enqueue into orders")
t.ok(db.sql("SELECT string_agg(worker, ',' ORDER BY worker) FROM baton.workers") == "w-billing,w-orders",
     "both workers registered as their own roles", db.sql("SELECT string_agg(worker, ',') FROM baton.workers"))

# A worker whose role lacks "work" on its queue: a clear error naming the queue and the grant, exit 2.
wc = Worker(db, conf % ("w-intruder", "billing", svc_b), env_extra={"PGUSER": C})
rc = wc.proc.wait(30)
t.is_(rc, 2, "a worker whose role lacks work on billing exits 2 at startup", wc.logtext())
t.ok('lacks privilege "work" on queue "billing"' in wc.logtext() and C in wc.logtext(),
     "its error names the role, the queue and the missing grant", wc.logtext())
env = dict(db.env)
env["PGUSER"] = C
rc, out, err = run([WORKER, "--config", wc.conf, "--check-config", "--dsn", "dbname=" + db.name], env=env)
t.ok(rc == 2 and 'lacks privilege "work" on queue "billing"' in err, "--check-config --dsn says so too (exit 2)",
     "rc=%d\n%s%s" % (rc, out, err))
env["PGUSER"] = B
rc, out, err = run([WORKER, "--config", wc.conf, "--check-config", "--dsn", "dbname=" + db.name], env=env)
t.ok(rc == 0 and "OK" in out, "and passes for a role with the grant", "rc=%d\n%s%s" % (rc, out, err))

t.is_(wa.stop(), 0, "worker A drains and exits 0")
t.is_(wb.stop(), 0, "worker B drains and exits 0")
