#!/usr/bin/env python3
# 80_console_cli.t — the `baton` command line against seeded data: every command, human and --json output, exit codes, bad input.
import json
import os
import subprocess
import sys
import threading
import time

ROOT = os.environ.get("BATON_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BATON = os.environ.get("BATON_CLI", os.path.join(ROOT, "console", "baton"))
DB = "console_cli_%d" % os.getpid()
n = 0
failed = 0


def ok(cond, name, detail=""):
    global n, failed
    n += 1
    if cond:
        print("ok %d - %s" % (n, name))
    else:
        failed += 1
        print("not ok %d - %s" % (n, name))
        for line in str(detail).splitlines()[:20]:
            print("#   " + line)
    sys.stdout.flush()


def psql(sql, db=DB):
    return subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


def baton(*args, dsn=None):
    env = dict(os.environ, PGDATABASE=DB)
    cmd = [BATON] + (["--dsn", dsn] if dsn else []) + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    return p.returncode, p.stdout, p.stderr


def baton_json(*args):
    rc, out, err = baton("--json", *args)
    try:
        return rc, json.loads(out), err
    except ValueError:
        return rc, None, err + out


def one_line(err):
    return len(err.strip().splitlines()) == 1 and err.startswith("baton: ")


def drive_run(run, stop):
    """Plays the example workers: completes due tasks of the run's queues until it ends."""
    deadline = time.time() + 60
    while time.time() < deadline and not stop.is_set():
        psql("SELECT baton.complete(c.id, c.attempt, '{\"done\": true}') FROM baton.claim('{inventory,payments}', 'test', 10) AS c")
        if psql("SELECT state FROM baton.runs WHERE id = %d" % run) != "running":
            return
        time.sleep(0.2)


subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", "CREATE DATABASE %s TEMPLATE baton_template" % DB], check=True,
               capture_output=True)
try:
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", DB, "-f",
                    os.path.join(ROOT, "tests/integration/lib/console_seed.sql")], check=True, capture_output=True)

    # --- status
    rc, out, err = baton("status")
    ok(rc == 0 and all(q in out for q in ("emails", "inventory", "payments", "idle")) and "Scheduler" in out,
       "status lists every queue and the scheduler", out + err)
    ok("\033[" not in out, "piped output has no colour codes")
    ok("concurrency 4" in out, "status shows limits")
    rc, js, err = baton_json("status")
    qs = {q["queue"]: q for q in js["queues"]} if js else {}
    ok(rc == 0 and set(qs) == {"emails", "inventory", "payments", "idle"} and "scheduler_running" in js
       and js["workers"] == [], "status --json: queues, workers, scheduler", js)
    ok(qs.get("emails", {}).get("failed") == 1 and qs["emails"]["pending"] == 1 and qs["emails"]["done_last_minute"] == 1,
       "status --json counts pending, failed and throughput", qs.get("emails"))

    w = subprocess.Popen([BATON, "status", "--watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, PGDATABASE=DB))
    os.set_blocking(w.stdout.fileno(), False)
    deadline = time.time() + 60
    seen = ""
    while time.time() < deadline and seen.count("\033[H\033[2J") < 2:
        time.sleep(0.2)
        try:
            seen += os.read(w.stdout.fileno(), 65536).decode(errors="replace")
        except BlockingIOError:
            pass
    w.send_signal(2)
    rest, err = w.communicate(timeout=30)
    err = err.decode(errors="replace")
    ok(seen.count("\033[H\033[2J") >= 2 and seen.count("Queues") >= 2 and w.returncode == 0,
       "status --watch redraws every second and stops cleanly on Ctrl-C", repr(seen[:300]) + err)

    # --- tasks / task
    rc, out, err = baton("tasks")
    ok(rc == 0 and "smtp said no" in out and "payments" in out, "tasks lists tasks with their errors", out)
    rc, js, err = baton_json("tasks", "--queue", "emails", "--state", "failed")
    ok(rc == 0 and len(js) == 1 and js[0]["error"] == "smtp said no", "tasks --queue --state filters (--json)", js)
    rc, js, err = baton_json("tasks", "--search", "alert(1)")
    ok(rc == 0 and len(js) == 1 and js[0]["payload"]["note"] == "<script>alert(1)</script>", "tasks --search finds text", js)
    rc, js, err = baton_json("tasks", "--limit", "2")
    ok(rc == 0 and len(js) == 2, "tasks --limit", js)
    rc, out, err = baton("tasks", "--state", "bogus")
    ok(rc == 2 and one_line(err) and "bogus" in err, "tasks with an unknown state: exit 2, one line", err)
    rc, out, err = baton("tasks", "--queue", "nosuch")
    ok(rc == 1 and one_line(err) and "nosuch" in err, "tasks of a queue that does not exist: exit 1, one line", err)
    task3 = int(psql("SELECT id FROM baton.tasks WHERE payload ? 'note'"))
    rc, out, err = baton("task", str(task3))
    ok(rc == 0 and "<script>alert(1)</script>" in out and "waiting for a worker" in out,
       "task: payload and the explanation", out)
    rc, js, err = baton_json("task", "2")
    ok(rc == 0 and js["state"] == "failed" and "attempts spent" in js["explanation"] and js["attempt"] == 1,
       "task --json: state, attempt, explanation", js)
    rc, out, err = baton("task", "999")
    ok(rc == 1 and one_line(err) and "999" in err, "task of an unknown id: exit 1, one line", err)
    rc, out, err = baton("task", "abc")
    ok(rc == 2 and one_line(err), "task abc: exit 2", err)

    # --- runs / run / workflows
    rc, out, err = baton("runs")
    ok(rc == 0 and "order" in out and "running" in out and "0/2" in out, "runs lists runs with progress", out)
    rc, js, err = baton_json("runs", "--workflow", "order", "--state", "running")
    ok(rc == 0 and len(js) == 1 and js[0]["workflow"] == "order", "runs --workflow --state (--json)", js)
    rc, out, err = baton("run", "1")
    ok(rc == 0 and "reserve" in out and "charge" in out and "s_reserve --> s_charge" in out,
       "run: steps and the graph as text", out)
    rc, js, err = baton_json("run", "1")
    ok(rc == 0 and [s["step"] for s in js["steps"]] == ["reserve", "charge"] and js["steps"][0]["input"] == {"id": "o-1"},
       "run --json: steps in order with their inputs", js)
    rc, out, err = baton("run", "999")
    ok(rc == 1 and one_line(err), "run of an unknown id: exit 1, one line", err)
    rc, js, err = baton_json("workflows")
    ok(rc == 0 and js[0]["name"] == "order" and js[0]["version"] == 1 and js[0]["steps"] == 2, "workflows --json", js)
    rc, out, err = baton("workflows")
    ok(rc == 0 and "order" in out, "workflows", out)

    # --- events / subscriptions / schedules / trace
    rc, js, err = baton_json("events", "--topic", "order.placed")
    ok(rc == 0 and len(js) == 1 and js[0]["key"] == "o-1", "events --topic (--json)", js)
    rc, out, err = baton("events")
    ok(rc == 0 and "order.placed" in out, "events", out)
    rc, js, err = baton_json("subscriptions")
    ok(rc == 0 and js["subscriptions"][0]["name"] == "pay-on-order" and js["subscriptions"][0]["delivered"] == 1
       and js["dead_letters"] == [], "subscriptions --json with deliveries and dead letters", js)
    rc, out, err = baton("subscriptions")
    ok(rc == 0 and "pay-on-order" in out, "subscriptions", out)
    rc, js, err = baton_json("schedules")
    ok(rc == 0 and js[0]["name"] == "nightly" and js[0]["next_fire_at"], "schedules --json with next fire time", js)
    rc, out, err = baton("schedules")
    ok(rc == 0 and "0 3 * * *" in out, "schedules", out)
    rc, out, err = baton("trace", "--run", "1")
    lines = out.splitlines()
    ok(rc == 0 and any(l.startswith("run 1: order") for l in lines) and any(l.startswith("  └ step 1: reserve") for l in lines)
       and any(l.startswith("    └ task") for l in lines), "trace --run: an indented tree", out)
    rc, js, err = baton_json("trace", "--event", "1")
    ok(rc == 0 and [r["kind"] for r in js] == ["event", "task"], "trace --event (--json)", js)
    corr = psql("SELECT correlation_id FROM baton.events WHERE id = 1")
    rc, out, err = baton("trace", corr)
    ok(rc == 0 and "event 1: order.placed" in out, "trace CORRELATION", out)
    rc, out, err = baton("trace", "not-a-uuid")
    ok(rc == 2 and one_line(err), "trace of a malformed id: exit 2", err)
    rc, out, err = baton("trace")
    ok(rc == 2 and one_line(err), "trace without an argument: exit 2", err)

    # --- actions
    before = psql("SELECT count(*) FROM baton.tasks")
    rc, out, err = baton("enqueue", "emails", "{bad")
    ok(rc == 2 and one_line(err) and "json" in err and psql("SELECT count(*) FROM baton.tasks") == before,
       "enqueue of malformed JSON: exit 2, one line, nothing enqueued", err)
    rc, out, err = baton("enqueue", "nosuch", "{}")
    ok(rc == 1 and one_line(err) and "nosuch" in err, "enqueue to a queue that does not exist: exit 1", err)
    rc, js, err = baton_json("enqueue", "emails", '{"to": "eve@example.com"}')
    ok(rc == 0 and psql("SELECT payload->>'to' FROM baton.tasks WHERE id = %d" % js["task"]) == "eve@example.com",
       "enqueue returns the task id", js)
    rc, out, err = baton("pause", "emails")
    ok(rc == 0 and psql("SELECT paused FROM baton.queues WHERE queue = 'emails'") == "t", "pause", out + err)
    rc, out, err = baton("resume", "emails")
    ok(rc == 0 and psql("SELECT paused FROM baton.queues WHERE queue = 'emails'") == "f", "resume", out + err)
    rc, out, err = baton("pause", "nosuch")
    ok(rc == 1 and one_line(err), "pause of a queue that does not exist: exit 1", err)
    rc, out, err = baton("retry", "2")
    ok(rc == 0 and out.strip() == "retried 1 task" and psql("SELECT state FROM baton.tasks WHERE id = 2") == "pending",
       "retry ID", out + err)
    rc, out, err = baton("cancel", str(task3), "999")
    ok(rc == 1 and one_line(err) and psql("SELECT state FROM baton.tasks WHERE id = %d" % task3) == "pending",
       "a bulk cancel with an unknown id: exit 1, nothing changes", err)
    rc, out, err = baton("cancel", "--queue", "emails")
    ok(rc == 0 and out.strip() == "cancelled 3 tasks" and psql("SELECT count(*) FROM baton.tasks WHERE queue = 'emails' AND state = 'cancelled'") == "3",
       "cancel --queue: one transaction, says how many", out + err)
    rc, js, err = baton_json("retry", "--queue", "emails", "--state", "cancelled")
    ok(rc == 0 and js == {"retried": 3}, "retry --queue --state cancelled (--json)", js)
    rc, out, err = baton("retry")
    ok(rc == 2 and one_line(err), "retry without ids: exit 2", err)
    rc, out, err = baton("publish", "order.placed", '{"total": 5}', "--key", "o-2")
    ok(rc == 0 and out.strip().startswith("event 2 (1 delivery)"), "publish says how many deliveries", out + err)

    # --- wait / start --wait (LISTEN baton_runs)
    rc, out, err = baton("wait", "1", "--timeout", "0.5")
    ok(rc == 1 and "still running" in err, "wait --timeout on a running run: exit 1", err)
    stop = threading.Event()
    t = threading.Thread(target=drive_run, args=(1, stop))
    t.start()
    rc, out, err = baton("wait", "1", "--timeout", "120")
    stop.set()
    t.join()
    ok(rc == 0 and json.loads(out)["charge"] == {"done": True}, "wait prints the output of a succeeded run, exit 0",
       out + err)
    rc, js, err = baton_json("run", "1")
    ok(js and js["state"] == "succeeded" and js["progress"] == "2/2", "run shows the finished run", js)
    stop = threading.Event()
    nxt = int(psql("SELECT COALESCE(max(id), 0) + 1 FROM baton.runs"))
    t = threading.Thread(target=drive_run, args=(nxt, stop))
    t.start()
    rc, out, err = baton("start", "order", '{"id": "o-3"}', "--wait", "--timeout", "120")
    stop.set()
    t.join()
    ok(rc == 0 and "reserve" in json.loads(out), "start --wait: exit 0 with the output", out + err)
    rc, js, err = baton_json("start", "order", '{"id": "o-4"}')
    run = js["run"]
    rc, out, err = baton("cancel", "--run", str(run))
    ok(rc == 0 and out.strip() == "cancelled run", "cancel --run", out + err)
    rc, out, err = baton("wait", str(run))
    ok(rc == 1 and "cancelled" in err, "wait on a cancelled run: exit 1", err)
    rc, out, err = baton("start", "nosuch", "{}")
    ok(rc == 1 and one_line(err), "start of an unknown workflow: exit 1", err)

    # --- usage and connection
    rc, out, err = baton("frobnicate")
    ok(rc == 2 and one_line(err), "unknown command: exit 2", err)
    rc, out, err = baton("tasks", "--frob")
    ok(rc == 2 and one_line(err), "unknown option: exit 2", err)
    rc, out, err = baton("status", dsn="this is not a dsn")
    ok(rc == 2 and one_line(err) and "this is not a dsn" in err, "a DSN libpq cannot parse: exit 2, named", err)
    rc, out, err = baton("status", dsn="dbname=no_such_db_%d" % os.getpid())
    ok(rc == 3 and one_line(err) and "does not exist" in err, "a database that does not exist: exit 3, one line", err)
    rc, out, err = baton("status", dsn="dbname=postgres")
    ok(rc == 3 and one_line(err) and "CREATE EXTENSION baton" in err, "a database without baton: exit 3", err)
    rc, out, err = baton("--help")
    ok(rc == 0 and "baton wait RUN" in out, "--help lists the commands", out)
finally:
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB],
                   capture_output=True)
print("1..%d" % n)
sys.exit(1 if failed else 0)
