#!/usr/bin/env python3
"""packer — packs one item into a box (baton-worker `stream` handler).

Protocol (stream): one long-lived process serves many tasks. Each request is one line of JSON on
stdin: {"id": N, "attempt": A, "task": {"payload": ...}}; each response is one line on stdout:
{"id": N, "attempt": A, "ok": true, "result": ...} or {"id": N, "attempt": A, "ok": false, "error": "...", "retry": false}.
Responses may come in any order; flush after each line. A line {"cancel": N, "attempt": A} says
task N left (cancelled, timed out): stop working on it if you can; its answer would be ignored.

The workflow's `pack` step maps over the order's items: one task per item, payload = the item.
"""
import json
import sys


def why(e):
    return "missing %s" % e if isinstance(e, KeyError) else "a field of the wrong type"

for line in sys.stdin:
    request = json.loads(line)
    if "cancel" in request:
        continue                               # {"cancel": id}: nothing to stop here
    item = request["task"]["payload"]
    try:
        box = {"sku": item["sku"], "qty": item.get("qty", 1), "box": "S" if item.get("qty", 1) < 3 else "L"}
        answer = {"id": request["id"], "attempt": request["attempt"], "ok": True, "result": box}
    except (KeyError, TypeError, AttributeError) as e:
        # A payload this service does not understand fails without retry, with one clear line.
        answer = {"id": request["id"], "attempt": request["attempt"], "ok": False, "retry": False,
                  "error": "packer: payload not understood (needs an item {\"sku\", \"qty\"}; %s): %s"
                           % (why(e), json.dumps(item)[:200])}
    print(json.dumps(answer), flush=True)
