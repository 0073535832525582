#!/usr/bin/env python3
"""shipping — books a shipment and returns its tracking number (baton-worker `exec` handler).

Protocol (exec): the task JSON on stdin, the result JSON on stdout, exit 0 = success.
  orchestration  payload = {"order": {...}, "boxes": [...]}  (the workflow's input template)
  choreography   payload = the payment.charged token envelope; the order travels in its result
"""
import json
import sys


def why(e):
    return "missing %s" % e if isinstance(e, KeyError) else "a field of the wrong type"

task = json.load(sys.stdin)
p = task["payload"]
try:
    order = p["order"] if "order" in p else p["payload"]["result"]["order"]
    result = {"order": order["id"], "tracking": "TRK-%s" % order["id"], "boxes": len(p.get("boxes", order["items"]))}
except (KeyError, TypeError, AttributeError) as e:
    # A payload this service does not understand fails at once (exit 65: no retry) with one clear line.
    print("shipping: payload not understood (needs {\"order\": {\"id\", \"items\"}} or a payment.charged token; "
          "%s): %s" % (why(e), json.dumps(p)[:200]), file=sys.stderr)
    sys.exit(65)
json.dump(result, sys.stdout)
