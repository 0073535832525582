"""worker_helpers.py — shared plumbing of the baton-worker integration tests (TAP output, databases, processes)."""
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("BATON_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
WORKER = os.environ.get("BATON_WORKER") or os.path.join(ROOT, "worker", "baton-worker")


class Tap:
    """Prints TAP; the plan is printed at the end."""

    def __init__(self):
        self.n = 0
        self.failed = 0
        atexit.register(self.done)

    def ok(self, cond, name, diag=None):
        self.n += 1
        print(("ok %d - %s" if cond else "not ok %d - %s") % (self.n, name), flush=True)
        if not cond:
            self.failed += 1
            if diag:
                for line in str(diag).splitlines()[-40:]:
                    print("# " + line, flush=True)
        return cond

    def is_(self, got, want, name, diag=None):
        good = got == want
        return self.ok(good, name, (diag + "\n" if diag else "") + "got: %r\nwant: %r" % (got, want) if not good else None)

    def done(self):
        print("1..%d" % self.n, flush=True)


class Db:
    """A database of its own, copied from baton_template and dropped at exit."""

    def __init__(self, name, env=None):
        self.name = name
        self.env = dict(os.environ if env is None else env)
        self.env["PGDATABASE"] = name
        subprocess.run(["dropdb", "--if-exists", name], env=self.env, check=False, capture_output=True)
        subprocess.run(["createdb", "-T", "baton_template", name], env=self.env, check=True)
        atexit.register(self.drop)

    def sql(self, q):
        r = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", q],
                           env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("psql failed: %s\n%s" % (q, r.stderr))
        return r.stdout.strip()

    def drop(self):
        subprocess.run(["dropdb", "--if-exists", "--force", self.name], env=self.env, check=False, capture_output=True)


class Worker:
    """A baton-worker process with its config in a temporary directory and its log in a file."""

    def __init__(self, db, conf, args=(), env_extra=None, prefix=()):
        self.dir = tmpdir("run")
        self.conf = os.path.join(self.dir, "worker.conf")
        self.log = os.path.join(self.dir, "worker.log")
        with open(self.conf, "w") as f:
            f.write(conf)
        env = dict(db.env)
        env.update(env_extra or {})
        self.proc = subprocess.Popen(list(prefix) + [WORKER, "--config", self.conf] + list(args), env=env,
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "w"), start_new_session=True)
        atexit.register(self.kill)

    def rewrite(self, conf):
        with open(self.conf, "w") as f:
            f.write(conf)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def logtext(self):
        with open(self.log) as f:
            return f.read()


def tmpdir(tag):
    """A fresh directory under /tmp, removed when the test exits."""
    d = tempfile.mkdtemp(prefix="baton-worker-%s-" % tag)
    os.chmod(d, 0o755)
    atexit.register(shutil.rmtree, d, True)
    return d


def wait_until(fn, timeout=30, step=0.05):
    """Polls fn until it returns a true value (returned) or the timeout passes (returns the last value)."""
    end = time.time() + timeout
    v = fn()
    while not v and time.time() < end:
        time.sleep(step)
        v = fn()
    return v


def write_script(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def run(args, env=None):
    r = subprocess.run(args, env=env, capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr
