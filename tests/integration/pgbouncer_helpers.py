"""pgbouncer_helpers.py — a throwaway PgBouncer (transaction pooling, 127.0.0.1, a free port) in front of the test cluster."""
import atexit
import os
import pwd
import socket
import subprocess
import time

from worker_helpers import tmpdir

PGBOUNCER = os.environ.get("BATON_PGBOUNCER", "/usr/sbin/pgbouncer")


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PgBouncer:
    """PgBouncer in transaction mode passing every database to the cluster's unix socket (PGHOST, PGPORT).

    PgBouncer refuses to run as root: as root it runs as the cluster's owner, "postgres"."""

    def __init__(self, pool_size=10, extra=""):
        self.dir = tmpdir("pgbouncer")
        os.chmod(self.dir, 0o777)
        self.log = os.path.join(self.dir, "pgbouncer.log")
        self.proc = None
        host, pgport, user = os.environ["PGHOST"], os.environ.get("PGPORT", "5432"), os.environ.get("PGUSER", "postgres")
        self.user = user
        with open(os.path.join(self.dir, "userlist.txt"), "w") as f:
            f.write('"%s" ""\n' % user)
        for attempt in range(5):
            self.port = free_port()
            ini = os.path.join(self.dir, "pgbouncer.ini")
            with open(ini, "w") as f:
                f.write("""[databases]
* = host=%s port=%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s/userlist.txt
admin_users = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 1000
max_db_connections = 0
ignore_startup_parameters = extra_float_digits
logfile = %s
pidfile = %s/pgbouncer.pid
log_connections = 0
log_disconnections = 0
%s
""" % (host, pgport, self.port, self.dir, user, pool_size, self.log, self.dir, extra))
            kw = {}
            if os.getuid() == 0:
                pw = pwd.getpwnam("postgres")
                kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            self.proc = subprocess.Popen([PGBOUNCER, ini], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         cwd="/", start_new_session=True, **kw)
            atexit.register(self.stop)
            end = time.time() + 15
            while time.time() < end and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                    return
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError("pgbouncer did not start: %s" % self.logtext())

    def dsn(self, dbname):
        return "host=127.0.0.1 port=%d dbname=%s user=%s" % (self.port, dbname, self.user)

    def env(self, dbname):
        """Environment for psql through the pooler."""
        e = dict(os.environ)
        e.update(PGHOST="127.0.0.1", PGPORT=str(self.port), PGDATABASE=dbname, PGUSER=self.user)
        return e

    def admin(self, command):
        """Runs a command on the admin console (SHOW POOLS, RECONNECT, ...)."""
        r = subprocess.run(["psql", "-X", "-qtA", "-c", command], env=self.env("pgbouncer"), capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("pgbouncer admin %s: %s" % (command, r.stderr))
        return r.stdout.strip()

    def logtext(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
