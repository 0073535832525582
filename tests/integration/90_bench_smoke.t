#!/bin/bash
# 90_bench_smoke.t — the benchmark harness runs end to end (bench/run.sh --smoke) and writes a report
# with the expected keys.  No thresholds: speed is judged by make bench, never by tests.
set -uo pipefail
root=${BATON_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
out=$(mktemp -d /tmp/baton-bench-smoke.XXXXXX)
chmod 755 "$out"   # the server runs as postgres and must reach the clusters below
trap 'rm -rf "$out"' EXIT

echo "1..6"
if BENCH_TMP=$out/tmp timeout -k 10 400 "$root/bench/run.sh" --smoke --out "$out" >"$out/run.log" 2>&1; then
    echo "ok 1 - bench/run.sh --smoke exits 0"
else
    echo "not ok 1 - bench/run.sh --smoke exits 0"
    sed 's/^/# /' "$out/run.log" | tail -30
fi
if [ -s "$out/REPORT.md" ] && grep -q '^| section | figure | value | bound | ratio | target | result |' "$out/REPORT.md"; then
    echo "ok 2 - REPORT.md has the results table"
else
    echo "not ok 2 - REPORT.md has the results table"
fi
python3 - "$out/report.json" <<'PY'
import json, sys
n = 3
def ok(cond, what):
    global n
    print(("ok" if cond else "not ok") + f" {n} - {what}")
    n += 1
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:                      # invalid or missing JSON fails all three
    for what in ("report.json is valid JSON", "figures", "sections"):
        ok(False, f"{what}: {e}")
    sys.exit(0)
meta = r.get("meta", {})
ok(all(k in r for k in ("meta", "postgres_settings", "sections", "figures", "summary"))
   and meta.get("commit") and meta.get("machine", {}).get("nproc") and meta.get("machine", {}).get("cpu_model")
   and "fsync" in r["postgres_settings"] and "synchronous_commit" in r["postgres_settings"],
   "report.json has meta (commit, machine), settings, sections, figures, summary")
ids = {f["id"] for f in r.get("figures", [])}
want = {"raw.claim.best", "sql.claim.k50", "enqueue.single", "enqueue.many", "latency.p50", "latency.p99",
        "flat.finished.claim_ms", "flat.scheduled.claim_ms", "drain.best", "drain.history.best",
        "drain.nohist.w1.batch50", "orch.chain.overhead", "orch.diamond.overhead",
        "enqueue.single.notify", "latency.notify.p99", "steady.noop.sustained", "steady.noop.p99_at50",
        "steady.stream.sustained", "steady.stream.p99_at50", "steady.idle.rate",
        "steady.idle.p99", "steady.after.rate", "steady.size.heap", "steady.size.indexes"}
fig_ok = want <= ids and all({"value", "unit", "bound", "ratio", "target", "result"} <= set(f)
                             and isinstance(f["value"], (int, float)) for f in r["figures"])
ok(fig_ok, "figures carry value, bound, ratio, target and result (missing: %s)" % sorted(want - ids))
secs = r.get("sections", {})
ok(set(secs) >= {"raw_claim", "sql_claim", "enqueue", "drain", "latency", "steady", "orchestration", "choreography",
                 "flatness", "footprint"}
   and all(v["status"] == "done" for v in secs.values()),
   "every section is reported, and done")
PY
# Nothing left behind: the scratch directory (clusters included) is gone and no server of it runs.
if [ -z "$(ls -A "$out/tmp" 2>/dev/null)" ] && ! pgrep -f -- "$out/tmp" >/dev/null; then
    echo "ok 6 - the run cleaned up after itself"
else
    echo "not ok 6 - the run cleaned up after itself"
    ls -A "$out/tmp" | sed 's/^/# /'
fi
