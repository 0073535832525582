#!/bin/bash
# 90_demo.t — runs `make demo`'s script non-interactively and turns its checks into TAP, so the demo cannot rot.
# The demo asserts its own outcomes (run states and outputs, the saga compensation, the failure
# token path, the trace); each of its check lines becomes a test here, plus its exit status and
# that it left no process running.
set -uo pipefail
root=$BATON_ROOT
if [ ! -x "$root/worker/baton-worker" ]; then echo "Bail out! baton-worker is not built (make check builds it)"; exit 1; fi
dir=$(mktemp -d /tmp/baton-demo-XXXXXX)
chmod 755 "$dir"
out=$dir.out
BATON_DEMO_CLUSTER_DIR=$dir/cluster BATON_DEMO_TIMEOUT=120 "$root/examples/demo.sh" >"$out" 2>&1
status=$?
checks=$(sed -n '/== 5. checks ==/,/== look around/p' "$out" | grep -E '^  (ok|FAIL) ')
n=$(printf '%s\n' "$checks" | grep -c .)
echo "1..$((n + 4))"
i=0
while IFS= read -r line; do
    i=$((i + 1))
    case "$line" in
        "  ok   "*) echo "ok $i - demo: ${line#  ok   }" ;;
        *) echo "not ok $i - demo: ${line#  FAIL }" ;;
    esac
done <<<"$checks"
[ "$n" -ge 9 ] && echo "ok $((n + 1)) - the demo ran all its checks ($n)" || echo "not ok $((n + 1)) - the demo ran all its checks (only $n)"
if [ $status -eq 0 ]; then echo "ok $((n + 2)) - demo exited 0"; else echo "not ok $((n + 2)) - demo exited $status"; sed 's/^/# /' "$out" | tail -40; fi
left=$(pgrep -f "$dir/cluster" | wc -l)
[ "$left" = 0 ] && echo "ok $((n + 3)) - the demo left nothing running" || echo "not ok $((n + 3)) - $left processes of the demo still run"
if grep -q 'console/baton --dsn .* web' "$out"; then echo "ok $((n + 4)) - the demo ends by printing the dashboard command"; else echo "not ok $((n + 4)) - the demo ends by printing the dashboard command"; fi
rm -rf "$dir" "$out"
