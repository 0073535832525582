#!/bin/bash
# run.sh — runs baton's benchmark sections, each on a fresh throwaway cluster, and writes the report.
#
#   bench/run.sh [--quick | --smoke] [--only a,b,...] [--out DIR]
#
#   (default)  the full run: every section at the sizes the targets are stated for
#   --quick    a ~1-minute subset with smaller counts (make bench-quick)
#   --smoke    a seconds-long run that only proves the harness works (tests): tiny counts,
#              fsync off, one shared cluster with a fresh database per section
#   --only     run only the named sections (e.g. --only raw_claim,latency)
#   --peers    run bench/peers/ instead (make bench-peers): baton against graphile-worker and
#              pg-boss, installed from npm into a scratch directory outside the repository
#   --out DIR  where REPORT.md, report.json and logs/ go
#              (default bench/results; bench/results/smoke for --smoke)
#
# Environment: BATON_FSYNC (default on), BATON_SYNC_COMMIT (default on) shape
# every cluster; the report records them.  BENCH_TMP: parent of the scratch
# directory (default /tmp).  Every section runs under a timeout
# and everything it started (servers, workers, clients) is stopped and deleted
# at the end, also on failure or Ctrl-C.  See docs/benchmarks.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bench=$root/bench
mode=full
sections_dir=sections
only=
out=

while [ $# -gt 0 ]; do
    case $1 in
        --quick) mode=quick ;;
        --smoke) mode=smoke ;;
        --full) mode=full ;;
        --peers) sections_dir=peers ;;
        --only) only=$2; shift ;;
        --only=*) only=${1#--only=} ;;
        --out) out=$2; shift ;;
        --out=*) out=${1#--out=} ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$out" ]; then
    out=$bench/results
    [ "$mode" = smoke ] && out=$bench/results/smoke
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

for tool in psql pgbench pg_config python3 timeout; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool not found in PATH" >&2; exit 1; }
done

# Sizes per mode.  Section timeouts bound every phase; B_PHASE_TIMEOUT bounds one pgbench run.
case $mode in
full)
    export B_CLIENTS=8 B_RAW_JOBS_K1=40000 B_RAW_JOBS_K50=400000 B_ENQ_SECONDS=15
    export B_DRAIN_TASKS=100000 B_DRAIN_SWEEP="1 10 50 200 1000" B_DRAIN_PROCS="1 2"
    export B_LAT_TASKS=1000 B_LAT_GAP_MS=10
    export B_WF_REPEAT=20 B_MAP_N=10000 B_EV_SECONDS=10 B_EV_SUBS=10
    export B_FLAT_FINISHED=10000000 B_FLAT_SCHEDULED=1000000 B_FLAT_CLAIMS=5000 B_FLAT_DRAIN=50000
    export B_SUSTAIN_SECONDS=600 B_FOOT_INFLIGHT=1000 B_FOOT_TASKS=5000
    export B_STEADY_STEP_S=30 B_STEADY_RATES="250 500 1000 2000 3000 4000 6000 8000 10000 12000 15000 20000 25000"
    export B_STEADY_LAT_S=30 B_IDLE_S=120 B_AFTER_S=60
    export B_PEER_DRAIN=100000 B_PEER_ROUNDS=2 B_PEER_STEP_S=20 B_PEER_RATES="250 500 1000 2000 3000 4000 6000 8000 10000 12000 15000 20000 25000"
    export B_PHASE_TIMEOUT=900 B_SECTION_TIMEOUT=1800 B_PROFILE=1
    export BATON_FSYNC=${BATON_FSYNC:-on} ;;
quick)
    export B_CLIENTS=8 B_RAW_JOBS_K1=4000 B_RAW_JOBS_K50=40000 B_ENQ_SECONDS=2
    export B_DRAIN_TASKS=10000 B_DRAIN_SWEEP="50" B_DRAIN_PROCS="1 2"
    export B_LAT_TASKS=200 B_LAT_GAP_MS=10
    export B_WF_REPEAT=3 B_MAP_N=10000 B_EV_SECONDS=2 B_EV_SUBS=10
    export B_FLAT_FINISHED=200000 B_FLAT_SCHEDULED=100000 B_FLAT_CLAIMS=1000 B_FLAT_DRAIN=10000
    export B_SUSTAIN_SECONDS=5 B_FOOT_INFLIGHT=1000 B_FOOT_TASKS=2000
    export B_STEADY_STEP_S=5 B_STEADY_RATES="250 500 1000 2000 4000 6000 8000 12000 16000 20000"
    export B_STEADY_LAT_S=5 B_IDLE_S=20 B_AFTER_S=10
    export B_PEER_DRAIN=10000 B_PEER_ROUNDS=1 B_PEER_STEP_S=5 B_PEER_RATES="250 500 1000 2000 4000 8000 12000 16000"
    export B_PHASE_TIMEOUT=120 B_SECTION_TIMEOUT=300 B_PROFILE=0
    export BATON_FSYNC=${BATON_FSYNC:-on} ;;
smoke)
    export B_CLIENTS=4 B_RAW_JOBS_K1=200 B_RAW_JOBS_K50=2000 B_ENQ_SECONDS=1 B_ENQ_TX=50
    export B_DRAIN_TASKS=1000 B_DRAIN_SWEEP="50" B_DRAIN_PROCS="1"
    export B_LAT_TASKS=20 B_LAT_GAP_MS=5
    export B_WF_REPEAT=1 B_MAP_N=100 B_EV_SECONDS=1 B_EV_SUBS=3
    export B_FLAT_FINISHED=5000 B_FLAT_SCHEDULED=2000 B_FLAT_CLAIMS=100 B_FLAT_DRAIN=1000
    export B_SUSTAIN_SECONDS=1 B_FOOT_INFLIGHT=50 B_FOOT_TASKS=100
    export B_STEADY_STEP_S=1 B_STEADY_RATES="100" B_STEADY_PCTS=50 B_STEADY_LAT_S=1 B_IDLE_S=1 B_AFTER_S=1
    export B_PEER_DRAIN=500 B_PEER_ROUNDS=1 B_PEER_STEP_S=1 B_PEER_RATES="50"
    export B_PHASE_TIMEOUT=30 B_SECTION_TIMEOUT=120 B_PROFILE=0
    # Smoke proves the harness, not the disk: no fsync unless asked.
    export BATON_FSYNC=${BATON_FSYNC:-off} ;;
esac
export BATON_SYNC_COMMIT=${BATON_SYNC_COMMIT:-on}

# The real interpreter, not a version-manager shim: the sections call it often.
PYTHON=$(python3 -c 'import sys; print(sys.executable)')
export PYTHON
mkdir -p "${BENCH_TMP:-/tmp}"
work=$(mktemp -d "${BENCH_TMP:-/tmp}/baton-bench.XXXXXX")
chmod 755 "$work"   # the server runs as postgres and must reach its cluster directory
export BENCH_ROOT=$root BENCH_WORK=$work BENCH_OUT=$out BENCH_MODE=$mode
touch "$work/figures.jsonl" "$work/sections.jsonl" "$work/cluster-dirs"

# Stops whatever a section left behind: recorded background processes, clusters.
sweep() {
    local f pid d
    for f in "$work"/pids.*; do
        [ -f "$f" ] || continue
        for pid in $(cat "$f"); do kill -TERM "$pid" 2>/dev/null || true; done
        sleep 0.5
        for pid in $(cat "$f"); do kill -KILL "$pid" 2>/dev/null || true; done
        rm -f "$f"
    done
    sort -u "$work/cluster-dirs" 2>/dev/null | while read -r d; do
        [ -n "$d" ] && BATON_CLUSTER_DIR=$d "$root/scripts/cluster.sh" destroy >/dev/null 2>&1 || true
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    sweep
    if [ -d "$work/logs" ]; then
        rm -rf "$out/logs"; cp -r "$work/logs" "$out/logs" 2>/dev/null || true
    fi
    if [ -n "${BENCH_SHARED_CLUSTER:-}" ]; then
        BATON_CLUSTER_DIR=$BENCH_SHARED_CLUSTER "$root/scripts/cluster.sh" destroy >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
    exit "$rc"
}
# Signals every process below $1, leaves first (timeout puts each section in a process group of
# its own, so a Ctrl-C at the terminal reaches only run.sh: it must pass it on).
kill_tree() {
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$child"; done
    kill -TERM "$1" 2>/dev/null || true
}
section_pid=
interrupted() {
    echo "run.sh: interrupted, cleaning up" >&2
    if [ -n "$section_pid" ]; then
        kill_tree "$section_pid"
        wait "$section_pid" 2>/dev/null || true   # the section's own trap stops its cluster
    fi
    exit 130
}
trap cleanup EXIT
trap interrupted INT TERM

# What the report says about the run.
commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || commit="$commit+dirty"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
M_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) M_MODE=$mode M_COMMIT=$commit M_CPU=$cpu M_NPROC=$(nproc) \
M_KERNEL=$(uname -r) M_LOAD=$(cut -d' ' -f1-3 /proc/loadavg) M_PG=$(pg_config --version) \
M_MEM=$(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo) python3 - "$work/meta.json" <<'PY'
import json, os, sys
e = os.environ
json.dump({"date": e["M_DATE"], "mode": e["M_MODE"], "commit": e["M_COMMIT"],
           "machine": {"nproc": int(e["M_NPROC"]), "cpu_model": e["M_CPU"], "kernel": e["M_KERNEL"],
                       "mem_total_kb": int(e["M_MEM"] or 0), "loadavg_at_start": e["M_LOAD"]},
           "postgres_version": e["M_PG"],
           "env": {"BATON_FSYNC": e["BATON_FSYNC"], "BATON_SYNC_COMMIT": e["BATON_SYNC_COMMIT"]}},
          open(sys.argv[1], "w"), indent=1)
PY

if [ "$mode" = smoke ]; then
    # One cluster for all sections (each gets its own database): the smoke run is about the harness.
    # Preloaded, its scheduler workers serving the databases of the sections that measure preloaded
    # (created first: a worker whose database does not exist exits and comes back 10 s later).
    preloaded_dbs="bench_enqueue, bench_latency, bench_steady"
    export BENCH_SHARED_CLUSTER=$work/clusters/shared BENCH_SHARED_CONF="track_commit_timestamp = on
baton.database = '$preloaded_dbs'"
    BATON_CLUSTER_DIR=$BENCH_SHARED_CLUSTER BATON_DB=postgres BATON_EXTRA_CONF=$BENCH_SHARED_CONF \
        "$root/scripts/cluster.sh" start >/dev/null
    for db in ${preloaded_dbs//,/}; do
        BATON_CLUSTER_DIR=$BENCH_SHARED_CLUSTER BATON_DB=$db BATON_EXTRA_CONF=$BENCH_SHARED_CONF \
            "$root/scripts/cluster.sh" start >/dev/null
    done
    BATON_CLUSTER_DIR=$BENCH_SHARED_CLUSTER BATON_DB=postgres BATON_EXTRA_CONF=$BENCH_SHARED_CONF \
        "$root/scripts/cluster.sh" restart --preload >/dev/null
fi

echo "baton bench: mode=$mode commit=$commit fsync=$BATON_FSYNC synchronous_commit=$BATON_SYNC_COMMIT" >&2
failed=0
for script in "$bench/$sections_dir"/[0-9][0-9]_*.sh; do
    name=$(basename "$script" .sh); name=${name#[0-9][0-9]_}
    if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
    limit=$B_SECTION_TIMEOUT
    [ "$sections_dir" = peers ] && limit=$((B_SECTION_TIMEOUT * 3))
    started=$SECONDS
    echo "== $name" >&2
    rc=0
    # In the background, so that a signal interrupts the wait at once.
    SECTION=$name timeout -k 15 "$limit" bash "$script" &
    section_pid=$!
    wait "$section_pid" || rc=$?
    section_pid=
    took=$((SECONDS - started))
    case $rc in
        0) status=done ;;
        124|137) status=failed; reason="timed out after ${limit} s" ;;
        *) status=failed; reason="exit status $rc (see logs/)" ;;
    esac
    if [ "$status" = failed ]; then
        failed=1
        echo "== $name FAILED: $reason" >&2
        python3 -c 'import json, sys; print(json.dumps({"section": sys.argv[1], "part": "section", "status": "failed", "reason": sys.argv[2]}))' \
            "$name" "$reason" >>"$work/sections.jsonl"
    fi
    echo "$name $took" >>"$work/durations"
    sweep
done

python3 "$bench/report.py" "$work" "$out"
cat "$out/REPORT.md"
echo "baton bench: wrote $out/REPORT.md and $out/report.json" >&2
exit "$failed"
