#!/usr/bin/env python3
"""inventory — reserves and releases stock (baton-worker `exec` handler).

Protocol (exec): baton-worker starts this program once per task, writes the task as one JSON
object on stdin ({"id", "queue", "attempt", "payload", ...}), and reads the result JSON from
stdout. Exit 0 = success, 65 = failed at once (retrying cannot help), 75 or any other exit =
retried with backoff until the attempts are spent (stderr is the error).

It serves both styles of the demo:
  orchestration  payload = {"action": "reserve" | "release", "order": {...}}  (the workflow's input template)
  choreography   payload = an event envelope: order.placed carries {"order": {...}};
                 payment.failed is a failure token whose key is the order id -> release
"""
import json
import sys


def why(e):
    return "missing %s" % e if isinstance(e, KeyError) else "a field of the wrong type"

task = json.load(sys.stdin)
p = task["payload"]
try:
    if "action" in p:                          # orchestration
        action, order = p["action"], p["order"]
        order_id = order["id"]
    else:                                      # choreography: an event envelope
        action = "release" if p["topic"] == "payment.failed" else "reserve"
        order = (p.get("payload") or {}).get("order")
        order_id = p["key"]
    if action == "reserve":
        items = order["items"]
except (KeyError, TypeError, AttributeError) as e:
    # A payload this service does not understand fails at once (exit 65: no retry) with one clear line.
    print("inventory: payload not understood (needs {\"action\", \"order\": {\"id\", \"items\"}} or an "
          "order.placed / payment.failed event with a key; %s): %s" % (why(e), json.dumps(p)[:200]), file=sys.stderr)
    sys.exit(65)

if action == "reserve":
    if any(item.get("sku") == "out-of-stock" for item in items):
        print("no stock for an item of order %s" % order_id, file=sys.stderr)
        sys.exit(65)                           # EX_DATAERR: no retry can make stock appear
    json.dump({"order": order, "reservation": "R-%s" % order_id,
               "items": len(items)}, sys.stdout)
else:
    json.dump({"released": "R-%s" % order_id}, sys.stdout)
