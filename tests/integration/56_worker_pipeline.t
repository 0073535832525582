#!/usr/bin/env python3
# 56_worker_pipeline.t — a report batch and the next claim go in one pipeline (one transaction): when the claim
# fails it undoes the report, which the worker sends again, alone, so no completion is lost; when the report
# fails the claim does not run, the completion is retried alone and, refused again, reported as a failure.
# Sequences (not undone by a rollback) count every completion the server attempted, committed or not.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Db, Worker, wait_until, write_script

t = Tap()
db = Db("baton_worker_pipeline")
d = tmpdir("pipeline")
go = os.path.join(d, "go")
# Each task waits for the file "go", so the test decides when the first batch finishes.
svc = write_script(os.path.join(d, "svc.sh"), """#!/bin/sh
cat >/dev/null
while [ ! -e %s ]; do sleep 0.02; done
echo '{"ok": true}'
""" % go)
db.sql("""
SELECT baton.create_queue('p', backoff_base => '0', backoff_cap => '0');
CREATE TABLE public.ctl (fail_claims boolean NOT NULL, fail_completes boolean NOT NULL);
INSERT INTO public.ctl VALUES (false, false);
CREATE SEQUENCE public.completions_tried;
CREATE FUNCTION public.sabotage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state = 'running' AND NEW.state = 'succeeded' THEN
        PERFORM nextval('public.completions_tried');
        IF (SELECT fail_completes FROM public.ctl) THEN RAISE EXCEPTION 'sabotaged completion'; END IF;
    ELSIF OLD.state = 'pending' AND NEW.state = 'running' AND (SELECT fail_claims FROM public.ctl) THEN
        RAISE EXCEPTION 'sabotaged claim';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER sabotage BEFORE UPDATE ON baton._tasks FOR EACH ROW EXECUTE FUNCTION public.sabotage();
SELECT baton.enqueue_many('p', '[1, 2, 3, 4]');
""")
w = Worker(db, """[worker]
id = piper
concurrency = 2
max_batch = 2
tick = off
poll_interval = 100ms
[queue p]
handler = exec
command = %s
timeout = 30s
""" % svc)


def states():
    return db.sql("SELECT string_agg(state || ':' || attempt, ' ' ORDER BY id) FROM baton.tasks")


def tried():
    return int(db.sql("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.completions_tried"))


# --- the claim fails: the report that shared its transaction is sent again --------------------
t.ok(wait_until(lambda: states() == "running:1 running:1 pending:0 pending:0", 15),
     "the worker claims the first two tasks", states() + "\n" + w.logtext())
db.sql("UPDATE public.ctl SET fail_claims = true")
open(go, "w").close()
t.ok(wait_until(lambda: states() == "succeeded:1 succeeded:1 pending:0 pending:0", 15),
     "both completions land while every claim fails", states() + "\n" + w.logtext())
t.ok("sabotaged claim" in w.logtext(), "the worker logs the failed claim", w.logtext())
t.ok(tried() > 2, "a completion was undone with the claim it shared a transaction with, then sent again "
     "(%d completions tried for 2 tasks)" % tried())
db.sql("UPDATE public.ctl SET fail_claims = false")
t.ok(wait_until(lambda: states() == "succeeded:1 succeeded:1 succeeded:1 succeeded:1", 15),
     "claims work again and the rest of the queue drains", states() + "\n" + w.logtext())

# --- the report fails: the claim beside it does not run; the completion becomes a failure ------
os.unlink(go)
# Many attempts: a refused completion becomes a failed attempt, and they come round fast (no backoff).
db.sql("SELECT baton.enqueue_many('p', '[5, 6, 7]', max_attempts => 1000)")
t.ok(wait_until(lambda: states().endswith("running:1 running:1 pending:0"), 15), "two more tasks claimed",
     states() + "\n" + w.logtext())
db.sql("UPDATE public.ctl SET fail_completes = true")
open(go, "w").close()
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE error LIKE "
                              "'completing the task failed: %sabotaged completion%'") != "0", 15),
     "a completion the database refuses is retried alone, then reported as a failure that names the refusal",
     states() + "\n" + w.logtext())
db.sql("UPDATE public.ctl SET fail_completes = false")
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE state <> 'succeeded'") == "0", 20),
     "once completions work again, every task succeeds (the refused ones on a later attempt)",
     states() + "\n" + w.logtext())
t.is_(db.sql("SELECT count(*) FROM baton.tasks WHERE attempt > 1 AND id > 4") != "0", True,
      "some of them needed another attempt")
t.is_(w.stop(), 0, "the worker exits cleanly")
