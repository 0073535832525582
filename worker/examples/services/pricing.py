#!/usr/bin/env python3
"""pricing.py — an example stream co-process: one JSON request per line in, one JSON response per line out.

Requests:  {"id": 42, "task": {...the task object...}}
Responses: {"id": 42, "ok": true, "result": ...}
           {"id": 42, "ok": false, "error": "why", "retry": false}
The process lives as long as its stdin is open, so set-up costs are paid once."""
import json
import sys

PRICES = {"A-1": 250, "B-2": 1000}       # loaded once, used for every task

for line in sys.stdin:
    req = json.loads(line)
    p = req["task"]["payload"]
    sku = p.get("sku")
    if sku in PRICES:
        out = {"id": req["id"], "ok": True, "result": {"sku": sku, "cents": PRICES[sku] * p.get("qty", 1)}}
    else:
        out = {"id": req["id"], "ok": False, "error": "unknown sku %r" % sku, "retry": False}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()                   # answer now, not when the buffer fills
