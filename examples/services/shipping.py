#!/usr/bin/env python3
"""shipping — books a shipment and returns its tracking number (baton-worker `exec` handler).

Protocol (exec): the task JSON on stdin, the result JSON on stdout, exit 0 = success.
  orchestration  payload = {"order": {...}, "boxes": [...]}  (the workflow's input template)
  choreography   payload = the payment.charged token envelope; the order travels in its result
"""
import json
import sys

task = json.load(sys.stdin)
p = task["payload"]
order = p["order"] if "order" in p else p["payload"]["result"]["order"]
json.dump({"order": order["id"], "tracking": "TRK-%s" % order["id"],
           "boxes": len(p.get("boxes", order["items"]))}, sys.stdout)
