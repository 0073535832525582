#!/usr/bin/env python3
# 47_worker_http.t — the http handler against a loopback server: 2xx result, 4xx failure, 5xx retry, headers, timeout.
import http.server
import json
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_helpers import Tap, Db, Worker, wait_until

t = Tap()
db = Db("baton_worker_http")
seen = {"conns": set(), "requests": 0}


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        seen["requests"] += 1
        seen["conns"].add(self.client_address[1])
        p = body["payload"]
        code = p.get("code", 200)
        if p.get("sleep"):
            import time
            time.sleep(p["sleep"])
        if code == 200 and p.get("text"):
            out = b"hello, not json"
        elif code == 200 and p.get("empty"):
            out = b""
        elif code == 200:
            out = json.dumps({"task": body["id"], "token": self.headers.get("X-Token"), "ct": self.headers.get("Content-Type")}).encode()
        else:
            out = ("status %d" % code).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        except (BrokenPipeError, ConnectionResetError):
            pass    # the worker gave up on this request (its timeout test): expected, not a failure to print

    def log_message(self, *a):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
port = srv.server_address[1]
threading.Thread(target=srv.serve_forever, daemon=True).start()

db.sql("SELECT baton.create_queue('h', max_attempts => 2, backoff_base => '0', backoff_cap => '0')")
ids = {}
ids["ok"] = int(db.sql("SELECT baton.enqueue('h', '{\"code\": 200}')"))
ids["text"] = int(db.sql("SELECT baton.enqueue('h', '{\"code\": 200, \"text\": true}')"))
ids["empty"] = int(db.sql("SELECT baton.enqueue('h', '{\"code\": 200, \"empty\": true}')"))
ids["404"] = int(db.sql("SELECT baton.enqueue('h', '{\"code\": 404}')"))
ids["503"] = int(db.sql("SELECT baton.enqueue('h', '{\"code\": 503}')"))
ids["slow"] = int(db.sql("SELECT baton.enqueue('h', '{\"sleep\": 3}')"))
db.sql("SELECT count(*) FROM baton.enqueue_many('h', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 30)))")
w = Worker(db, """[worker]
concurrency = 4
poll_interval = 200ms
[queue h]
handler = http
url = http://127.0.0.1:%d/run
header = X-Token: s3cret-token
timeout = 1s
""" % port)
t.ok(wait_until(lambda: db.sql("SELECT count(*) FROM baton.tasks WHERE state IN ('succeeded', 'failed')") == "36", 30),
     "every request ends", w.logtext())
r = json.loads(db.sql("SELECT result FROM baton.tasks WHERE id = %d" % ids["ok"]))
t.ok(r["task"] == ids["ok"] and r["ct"] == "application/json", "2xx: the JSON body is the result (task JSON POSTed)", r)
t.is_(r["token"], "s3cret-token", "configured headers are sent")
t.is_(db.sql("SELECT state || ' ' || attempt || ' ' || error FROM baton.tasks WHERE id = %d" % ids["text"]),
      "failed 1 http: HTTP 200 body is not valid JSON: hello, not json",
      "a non-JSON 2xx body fails the task without retry (max_attempts 2), the error shows the body")
t.is_(db.sql("SELECT state || ' ' || (result IS NULL) FROM baton.tasks WHERE id = %d" % ids["empty"]), "succeeded true",
      "an empty 2xx body is a NULL result")
t.ok(w.proc.poll() is None, "the worker keeps running after a malformed body", w.logtext())
t.is_(db.sql("SELECT state || ' ' || attempt || ' ' || error FROM baton.tasks WHERE id = %d" % ids["404"]),
      "failed 1 HTTP 404: status 404", "4xx fails without retry")
t.is_(db.sql("SELECT state || ' ' || attempt || ' ' || error FROM baton.tasks WHERE id = %d" % ids["503"]),
      "failed 2 HTTP 503: status 503", "5xx is retried (until max_attempts)")
t.ok(db.sql("SELECT state || ' ' || attempt FROM baton.tasks WHERE id = %d" % ids["slow"]) == "failed 2" and
     "timed out" in db.sql("SELECT error FROM baton.tasks WHERE id = %d" % ids["slow"]),
     "a request past the timeout is retried, then fails", db.sql("SELECT error FROM baton.tasks WHERE id = %d" % ids["slow"]))
t.ok(len(seen["conns"]) < seen["requests"] / 2,
     "connections are reused (%d connections for %d requests)" % (len(seen["conns"]), seen["requests"]))
t.is_(w.stop(), 0, "clean exit")
# An unreachable server: connection refused is retried.
s = socket.socket()
s.bind(("127.0.0.1", 0))
dead = s.getsockname()[1]
s.close()
db.sql("SELECT baton.create_queue('dead', max_attempts => 1)")
did = int(db.sql("SELECT baton.enqueue('dead')"))
w = Worker(db, "[queue dead]\nhandler = http\nurl = http://127.0.0.1:%d/\n" % dead)
t.ok(wait_until(lambda: db.sql("SELECT state FROM baton.tasks WHERE id = %d" % did) == "failed", 10), "refused connection ends")
t.ok("request failed" in db.sql("SELECT error FROM baton.tasks WHERE id = %d" % did), "with the connection error",
     db.sql("SELECT error FROM baton.tasks WHERE id = %d" % did))
t.is_(w.stop(), 0, "clean exit")
srv.shutdown()
