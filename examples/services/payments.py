#!/usr/bin/env python3
"""payments — a tiny HTTP payment service (baton-worker `http` handler).

Protocol (http): baton-worker POSTs each task as JSON ({"id", "queue", "attempt", "payload", ...})
to the queue's url. 2xx = success with the response body as the result; 4xx = failure, no retry
(a declined card will not get better); 5xx, timeouts and connection errors = retry later.

  POST /charge   charges the order's total; cards starting with "4000" are declined (402)
  POST /refund   refunds a charge (the saga compensation of the workflow)

Usage: payments.py PORT   (listens on 127.0.0.1 only)
"""
import json
import sys


def why(e):
    return "missing %s" % e if isinstance(e, KeyError) else "a field of the wrong type"
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def order_of(payload):
    if "order" in payload:                     # orchestration: the workflow's input template
        return payload["order"]
    return payload["payload"]["result"]["order"]   # choreography: the inventory.reserved token


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        task = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            if self.path == "/refund":
                charge = task["payload"]["charge"]
                self.reply(200, {"refunded": charge["charge_id"], "amount": charge["amount"]})
                return
            order = order_of(task["payload"])
            total = sum(i["price"] * i.get("qty", 1) for i in order["items"])
            card = order["card"]
        except (KeyError, TypeError, AttributeError) as e:
            # 400: a payload this service does not understand fails at once (no retry), saying what it needs.
            self.reply(400, {"error": "payments: payload not understood (needs {\"order\": {\"id\", \"card\", "
                                      "\"items\": [{\"price\"}]}} or an inventory.reserved token; %s)" % why(e)})
            return
        if card.startswith("4000"):
            self.reply(402, {"error": "card declined", "order": order["id"]})
        else:
            self.reply(200, {"order": order, "charge_id": "CH-%s" % order["id"], "amount": total})

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):              # keep the demo's output readable
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
