#!/usr/bin/env python3
# 72_failover.t — kill -9 of the primary under load, promotion of a synchronous standby: nothing committed is lost.
#
# A primary and a streaming standby (pg_basebackup, synchronous_standby_names,
# synchronous_commit = on) on 127.0.0.1 with free ports, throwaway data
# directories, baton preloaded on both (the scheduler background worker).
# Two producers enqueue, publish and start workflow runs (a map) through a
# multi-host conninfo and write what committed into a ledger; four baton-worker
# processes with the same conninfo (target_session_attrs=read-write, tick = off:
# only the background worker keeps time) run the tasks with an exec handler that
# logs every execution.  Then the primary is killed with SIGKILL, the standby
# promoted, and the test checks: every ledgered task, event and run reaches a
# terminal state on the new primary, only tasks in flight at the kill ran
# twice, no task claimed on the new primary was rescued, the workers reconnected
# by themselves, the scheduler started on the promoted server without a restart
# (it runs none while a standby), and cron fired each minute at most once.
# Waits are bounded polls; timings are printed as comments, never asserted.
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import tmpdir, Tap, Worker, wait_until, write_script

t = Tap()
t0 = time.time()
PG_BIN = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
AS_ROOT = os.getuid() == 0
base = tmpdir("failover")
os.chmod(base, 0o777)


def as_owner(args, **kw):
    """Runs a server program as the ordinary user "postgres" when we are root (PostgreSQL refuses root)."""
    if AS_ROOT:
        args = ["runuser", "-u", "postgres", "--"] + args
    return subprocess.run(args, cwd="/", capture_output=True, text=True, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def chown(path):
    if AS_ROOT:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


class Node:
    """One server of the pair: its directory, port and a psql to it."""

    def __init__(self, name):
        self.name = name
        self.dir = os.path.join(base, name)
        os.mkdir(self.dir)
        os.chmod(self.dir, 0o700)
        chown(self.dir)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.port = free_port()

    def conf(self, text):
        path = os.path.join(self.data, "postgresql.auto.conf")
        with open(path, "a") as f:
            f.write(text)
        chown(path)

    def start(self):
        r = as_owner([PG_BIN + "/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start"])
        if r.returncode:
            raise RuntimeError("pg_ctl start %s: %s\n%s" % (self.name, r.stderr, self.logtext()[-2000:]))

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def sql(self, q, db="baton", check=True):
        r = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                            "-p", str(self.port), "-U", "postgres", "-d", db, "-c", q],
                           capture_output=True, text=True, timeout=120)
        if r.returncode and check:
            raise RuntimeError("psql %s failed: %s\n%s" % (self.name, q, r.stderr))
        return r.stdout.strip() if r.returncode == 0 else None

    def logtext(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            as_owner([PG_BIN + "/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "60", "stop"])


primary, standby = Node("primary"), Node("standby")
import atexit
atexit.register(standby.stop)
atexit.register(primary.stop)

# ---- the pair ----
t_step = time.time()
r = as_owner([PG_BIN + "/initdb", "-D", primary.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8",
              "--locale=C"])
if r.returncode:
    print("Bail out! initdb failed: " + r.stderr)
    sys.exit(1)
# fsync off: the test kills processes, not the machine, so what was written
# reached the kernel and survives; the standby's copy is what the test relies on.
primary.conf("""
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 100
shared_buffers = '64MB'
fsync = off
wal_level = replica
max_wal_senders = 4
hot_standby = on
synchronous_commit = on
shared_preload_libraries = 'baton'
baton.database = 'baton'
baton.tick_interval = 200
log_line_prefix = '%%m [%%p] '
""" % (primary.port, primary.dir))
print("# initdb %.1f s" % (time.time() - t_step))
primary.start()
print("# primary started %.1f s" % (time.time() - t_step))
primary.sql("CREATE DATABASE baton", db="postgres")
primary.sql("CREATE EXTENSION baton")
print("# database and extension %.1f s" % (time.time() - t_step))
r = as_owner([PG_BIN + "/pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
              "-D", standby.data, "-R", "-X", "stream", "--no-sync", "--checkpoint=fast"])
if r.returncode:
    print("Bail out! pg_basebackup failed: " + r.stderr)
    sys.exit(1)
# The standby's own settings come last in postgresql.auto.conf and win.  Once
# promoted it has no standby of its own: synchronous_standby_names must be
# empty there or every commit would wait forever.
standby.conf("""
port = %d
unix_socket_directories = '%s'
synchronous_standby_names = ''
primary_conninfo = 'host=127.0.0.1 port=%d user=postgres application_name=baton_standby'
""" % (standby.port, standby.dir, primary.port))
print("# base backup %.1f s" % (time.time() - t_step))
standby.start()
print("# standby started %.1f s" % (time.time() - t_step))
# Synchronous only once the standby is there: before, every commit would wait for it.
primary.sql("ALTER SYSTEM SET synchronous_standby_names = 'baton_standby'")
primary.sql("SELECT pg_reload_conf()")
t.ok(wait_until(lambda: primary.sql("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'baton_standby'") == "sync", 60),
     "the standby streams from the primary as its synchronous standby")

t_pair = time.time()

# ---- what runs on it ----
primary.sql("""
SELECT baton.create_queue('fo');
SELECT baton.create_queue('fo_cron');
SELECT baton.define_workflow('fo_flow', '{"steps": {"fan": {"queue": "fo", "map": "$.input.items"},
                                                    "nap": {"kind": "sleep", "duration": "3 seconds", "after": ["fan"]},
                                                    "last": {"queue": "fo", "after": ["nap"]}}}');
SELECT baton.subscribe('fo_sub', 'fo.*', queue => 'fo');
SELECT baton.schedule('fo_cron', '* * * * *', queue => 'fo_cron');
-- fire the current minute now, on the old primary, so that a second fire of it would show
UPDATE baton._schedules SET next_fire_at = now() WHERE name = 'fo_cron';
""")
t.ok(wait_until(lambda: primary.sql("SELECT count(*) FROM baton.tasks WHERE queue = 'fo_cron'") == "1", 30),
     "the primary's scheduler fired the cron schedule")
t.ok(wait_until(lambda: standby.sql("SELECT count(*) FROM baton.tasks WHERE queue = 'fo_cron'") == "1", 30),
     "the standby has replayed it")

# The standby runs no scheduler: its background worker starts only when recovery ends.
sched_sql = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'baton scheduler'"
t.ok(primary.sql(sched_sql) == "1" and standby.sql("SELECT pg_is_in_recovery()") == "t", "the primary runs a scheduler; the standby is in recovery")
seen = set()
for _ in range(20):                     # two seconds of looking
    seen.add(standby.sql(sched_sql))
    time.sleep(0.1)
t.is_(seen, {"0"}, "the hot standby runs no baton scheduler")
t.ok("baton scheduler" not in standby.logtext() and "ERROR" not in standby.logtext(),
     "and its log has no scheduler line and no error", standby.logtext()[-2000:])
# A hot standby serves the read side (dashboards): the views work, writes are refused.
reads = standby.sql("SELECT (SELECT count(*) FROM baton.tasks) || ' ' || (SELECT count(*) FROM baton.queue_stats) || ' ' "
                    "|| (SELECT count(*) FROM baton.runs) || ' ' || (SELECT count(*) FROM baton.run_steps) || ' ' "
                    "|| (SELECT count(*) FROM baton.events) || ' ' || (SELECT count(*) FROM baton.schedules)", check=False)
t.ok(reads is not None and reads.split()[1] == "2", "the views (tasks, queue_stats, runs, run_steps, events, schedules) read on the standby", reads)
r = subprocess.run(["psql", "-X", "-qtA", "-h", "127.0.0.1", "-p", str(standby.port), "-U", "postgres", "-d", "baton",
                    "-v", "VERBOSITY=verbose", "-c", "SELECT baton.enqueue('fo')"], capture_output=True, text=True)
t.ok(r.returncode != 0 and "25006" in r.stderr, "an enqueue on the standby fails: read-only transaction (25006)", r.stderr)
standby_pm = standby.postmaster_pid()

# ---- load: producers with a ledger, four workers ----
runlog = os.path.join(base, "runs.log")
open(runlog, "w").close()
os.chmod(runlog, 0o666)
svc = write_script(os.path.join(base, "svc.sh"), """#!/bin/sh
in=$(cat)
id=${in#\\{\\"id\\":}; id=${id%%%%,*}
a=${in#*\\"attempt\\":}; a=${a%%%%,*}
echo "start $id $a $(date +%%s.%%N)" >> %s
case $in in *'"slow"'*) sleep 1.5 ;; *) sleep 0.05 ;; esac
echo '"ok"'
""" % runlog)
dsn = ("host=127.0.0.1,127.0.0.1 port=%d,%d dbname=baton user=postgres target_session_attrs=read-write connect_timeout=2"
       % (primary.port, standby.port))
conf = """[worker]
concurrency = 8
tick = off
poll_interval = 200ms
reconnect_max = 500ms
[queue fo]
handler = exec
command = %s
timeout = 60s
[queue fo_cron]
handler = noop
""" % svc


class Env:
    env = dict(os.environ)


workers = [Worker(Env, conf.replace("[worker]", "[worker]\nid = fo-w%d" % i), args=["--dsn", dsn]) for i in range(4)]

ledger = []                 # (kind, id, committed at) for every transaction whose COMMIT was acknowledged
ledger_lock = threading.Lock()
stop_producing = threading.Event()
producer_errors = [0]


def producer(n):
    i = 0
    while not stop_producing.is_set():
        i += 1
        stmts = ["SELECT 'T', baton.enqueue('fo', '{\"p\": %d}')" % n,
                 "SELECT 'T', baton.enqueue('fo', '{\"p\": %d}')" % n,
                 "SELECT 'T', baton.enqueue('fo', '{\"p\": %d, \"slow\": true}')" % n,
                 "SELECT 'E', baton.publish('fo.ev', '{\"p\": %d}')" % n]
        if i % 4 == 0:
            stmts.append("SELECT 'R', baton.start('fo_flow', '{\"items\": [1, 2, 3]}')")
        # One implicit transaction: psql exits 0 only when it committed.
        r = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-F", " ", "-v", "ON_ERROR_STOP=1", dsn,
                            "-c", "; ".join(stmts)], capture_output=True, text=True)
        now = time.time()
        if r.returncode == 0:
            with ledger_lock:
                rows = [l.split() for l in r.stdout.splitlines() if l.strip()]
                ledger.extend((k, int(v), now) for k, v in rows)
        else:
            producer_errors[0] += 1
            time.sleep(0.1)
        time.sleep(0.05)


producers = [threading.Thread(target=producer, args=(n,), daemon=True) for n in range(2)]
for p in producers:
    p.start()

t.ok(wait_until(lambda: int(primary.sql("SELECT count(*) FROM baton.tasks WHERE state = 'succeeded'")) >= 30
                and int(primary.sql("SELECT count(*) FROM baton.runs WHERE state = 'succeeded'")) >= 1, 60),
     "under load: tasks and workflow runs succeed on the primary",
     primary.sql("SELECT state, count(*) FROM baton.tasks GROUP BY 1") + "\n" + workers[0].logtext()[-1500:])
t.ok(wait_until(lambda: int(primary.sql("SELECT count(*) FROM baton.tasks WHERE state = 'running'")) > 0, 10),
     "tasks are in flight")
# Kill while a run sleeps: only the new primary's scheduler can wake it.
t.ok(wait_until(lambda: primary.sql("SELECT count(*) FROM baton.run_steps WHERE step = 'nap' AND state = 'waiting' "
                                    "AND wake_at > now() + interval '1 second'") != "0", 60),
     "a workflow run is sleeping")

# ---- kill -9 the primary (postmaster and every child), promote the standby ----
children = subprocess.run(["pgrep", "-P", str(primary.postmaster_pid())], capture_output=True, text=True).stdout.split()
t_kill = time.time()
for pid in [primary.postmaster_pid()] + [int(c) for c in children]:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
os.remove(os.path.join(primary.data, "postmaster.pid"))
# What was in flight: the running tasks the standby has once it replayed all it received
# (with synchronous commit that is every claim a worker was told about).
wait_until(lambda: standby.sql("SELECT pg_last_wal_replay_lsn() = pg_last_wal_receive_lsn()") == "t", 30)
inflight = set(tuple(map(int, l.split("|"))) for l in standby.sql(
    "SELECT id, attempt FROM baton._tasks WHERE state = 'running'").splitlines())
r = as_owner([PG_BIN + "/pg_ctl", "-D", standby.data, "-w", "-t", "60", "promote"])
t.ok(r.returncode == 0, "the standby is promoted", r.stderr)
t_promoted = time.time()
t.is_(standby.sql("SELECT pg_is_in_recovery()"), "f", "the new primary is out of recovery")

t.ok(wait_until(lambda: standby.sql(sched_sql) == "1", 30), "the scheduler starts on the promoted server by itself",
     standby.logtext()[-2000:])
t.is_(standby.postmaster_pid(), standby_pm, "without a restart (the same postmaster)")
t.ok(wait_until(lambda: all("reconnected" in w.logtext() for w in workers), 60),
     "the four workers reconnect by themselves", "\n".join(w.logtext()[-600:] for w in workers))
t.ok(all(w.proc.poll() is None for w in workers), "and are still running")

first_done = wait_until(lambda: standby.sql("SELECT extract(epoch FROM min(finished_at)) FROM baton.tasks WHERE finished_at > to_timestamp(%f)" % t_kill), 60)

# Producers go on against the new primary for a moment, then stop.
n_before = len(ledger)
wait_until(lambda: len([e for e in ledger if e[2] > t_promoted]) >= 20, 30)
stop_producing.set()
for p in producers:
    p.join(60)
t.ok(any(e[2] > t_promoted for e in ledger), "the producers commit on the new primary too (same conninfo)")

committed_before = [e for e in ledger if e[2] < t_kill]
tasks = [e[1] for e in ledger if e[0] == "T"]
runs = [e[1] for e in ledger if e[0] == "R"]
events = [e[1] for e in ledger if e[0] == "E"]
ids = lambda xs: "ARRAY[%s]::bigint[]" % ",".join(map(str, xs or [0]))

# Everything ends: the tasks (and the runs' and events' tasks) on the new primary.
done_sql = "SELECT count(*) FROM baton.tasks WHERE state NOT IN ('succeeded', 'failed', 'cancelled')"
t.ok(wait_until(lambda: standby.sql(done_sql) == "0" and standby.sql(
    "SELECT count(*) FROM baton.runs WHERE state = 'running'") == "0", 90),
     "every task and run reaches a terminal state on the new primary",
     standby.sql("SELECT queue, state, count(*) FROM baton.tasks GROUP BY 1, 2"))
missing_tasks = standby.sql("SELECT count(*) FROM unnest(%s) AS l(id) WHERE NOT EXISTS "
                            "(SELECT 1 FROM baton.tasks AS t WHERE t.id = l.id AND t.state = 'succeeded')" % ids(tasks))
t.is_(missing_tasks, "0", "lost 0: every ledgered task (%d, %d committed before the kill) succeeded"
      % (len(tasks), len([e for e in committed_before if e[0] == "T"])))
t.is_(standby.sql("SELECT count(*) FROM unnest(%s) AS l(id) WHERE NOT EXISTS "
                  "(SELECT 1 FROM baton.runs AS r WHERE r.id = l.id AND r.state = 'succeeded')" % ids(runs)), "0",
      "lost 0: every ledgered workflow run (%d) succeeded, its map included" % len(runs))
t.is_(standby.sql("SELECT count(*) FROM unnest(%s) AS l(id) WHERE (SELECT count(*) FROM baton.tasks AS t "
                  "WHERE t.event_id = l.id AND t.state = 'succeeded') <> 1" % ids(events)), "0",
      "lost 0: every ledgered event (%d) has its subscriber's task, succeeded" % len(events))
sleeping = standby.sql("SELECT count(*) || ' ' || count(*) FILTER (WHERE r.state = 'succeeded') FROM baton.run_steps AS s "
                      "JOIN baton.runs AS r ON r.id = s.run_id WHERE s.step = 'nap' AND s.wake_at > to_timestamp(%f) "
                      "AND r.id = ANY(%s)" % (t_kill, ids([e[1] for e in committed_before if e[0] == "R"]))).split()
t.ok(int(sleeping[0]) > 0 and sleeping[0] == sleeping[1],
     "runs started before the kill whose sleep ended after it were woken by the new primary's scheduler and succeeded"
     " (%s; the workers do not tick)" % sleeping[0], sleeping)

# Executions, from the handler's own log: (id, attempt) pairs and start times.
execs = {}
with open(runlog) as f:
    for line in f:
        parts = line.split()
        if len(parts) == 4 and parts[0] == "start":
            execs.setdefault(int(parts[1]), []).append((int(parts[2]), float(parts[3])))
twice_same_attempt = [i for i, ex in execs.items() if len(ex) != len({a for a, _ in ex})]
t.is_(twice_same_attempt, [], "no attempt of a task was executed twice")
reruns = {i: ex for i, ex in execs.items() if len(ex) > 1}
final = dict((int(a), int(b)) for a, b in (l.split("|") for l in standby.sql(
    "SELECT id, attempt FROM baton.tasks WHERE id = ANY(%s)" % ids(list(execs))).splitlines()))
first_attempt = lambda ex: min(ex, key=lambda e: e[1])[0]
t.is_(sorted(i for i, ex in reruns.items() if (i, first_attempt(ex)) not in inflight),
      [], "re-runs only for tasks in flight at the kill (%d of %d in flight ran again)" % (len(reruns), len(inflight)))
# An attempt claimed on the new primary that is not the task's last one was rescued or
# expired while its worker was alive.
superseded = sorted({(i, a) for i, ex in execs.items() for a, _ in ex if (i, a) not in inflight and a != final.get(i)})
t.is_(superseded, [], "no task claimed on the new primary was rescued or run again (each such attempt is the final one)")

cron = standby.sql("SELECT count(*) || ' ' || count(DISTINCT dedup_key) FROM baton.tasks WHERE queue = 'fo_cron'").split()
t.ok(cron[0] == cron[1], "cron fired each minute at most once across the failover (%s fires)" % cron[0], cron)

if first_done:
    print("# time from kill -9 of the primary to the first task completed on the new primary: %.2f s"
          " (promotion took %.2f s)" % (float(first_done) - t_kill, t_promoted - t_kill))
print("# ledger: %d tasks, %d events, %d runs committed (%d, %d, %d before the kill); %d producer transactions"
      " failed during the outage; %d tasks ran twice (in flight at the kill)"
      % (len(tasks), len(events), len(runs), len([e for e in committed_before if e[0] == "T"]),
         len([e for e in committed_before if e[0] == "E"]), len([e for e in committed_before if e[0] == "R"]),
         producer_errors[0], len(reruns)))
print("# phases: pair ready %.1f s, load until the kill %.1f s, kill to the end %.1f s"
      % (t_pair - t0, t_kill - t_pair, time.time() - t_kill))
for w in workers:
    w.stop()
