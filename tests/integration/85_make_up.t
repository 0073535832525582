#!/bin/bash
# 85_make_up.t — `make up`'s script starts the dashboard with the example workers and prints its address; `make down` stops it all.
set -uo pipefail
root=$BATON_ROOT
dir=$(mktemp -d /tmp/baton-up-XXXXXX)
chmod 755 "$dir"
out=$dir.out
echo "1..4"
BATON_CLUSTER_DIR=$dir/cluster "$root/examples/demo.sh" --up >"$out" 2>&1
status=$?
url=$(grep -o 'dashboard:  http://127\.0\.0\.1:[0-9]*/' "$out" | grep -o 'http://.*')
if [ $status -eq 0 ] && [ -n "$url" ]; then echo "ok 1 - make up prints the dashboard's address"; else echo "not ok 1 - make up prints the dashboard's address"; sed 's/^/# /' "$out"; fi
answer=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1] + "api/overview", timeout=60).read().decode())' "$url" 2>&1)
case "$answer" in
    *'"queue": "inventory"'*) echo "ok 2 - the dashboard answers with the demo's queues" ;;
    *) echo "not ok 2 - the dashboard answers with the demo's queues"; echo "# $answer" | head -5 ;;
esac
BATON_CLUSTER_DIR=$dir/cluster "$root/examples/demo.sh" --down >>"$out" 2>&1
[ $? -eq 0 ] && echo "ok 3 - make down" || { echo "not ok 3 - make down"; sed 's/^/# /' "$out" | tail -10; }
sleep 1
left=$(pgrep -f "$dir/cluster" | wc -l)
[ "$left" = 0 ] && echo "ok 4 - nothing left running (workers, services, dashboard, server)" || echo "not ok 4 - $left processes still run"
BATON_CLUSTER_DIR=$dir/cluster "$root/scripts/cluster.sh" destroy >/dev/null 2>&1
rm -rf "$dir" "$out"
