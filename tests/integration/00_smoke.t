#!/bin/bash
# 00_smoke.t — the shared test cluster answers through the PG* environment.
echo "1..1"
if psql -X -tAc 'SELECT 1' | grep -qx 1; then echo "ok 1 - cluster reachable"; else echo "not ok 1 - cluster reachable"; fi
