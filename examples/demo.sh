#!/bin/bash
# demo.sh — baton end to end on a throwaway cluster (make demo), or a cluster to explore (make up / make down).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export BATON_CLUSTER_DIR=${BATON_CLUSTER_DIR:-$root/.cluster}

case "${1:-}" in
    --up)
        conninfo=$("$root/scripts/cluster.sh" start)
        echo "baton is up. Connect with:"
        echo "  psql \"$conninfo\""
        echo "Stop it with: make down"
        ;;
    --down)
        "$root/scripts/cluster.sh" stop
        echo "baton is down (data kept in $BATON_CLUSTER_DIR; 'make clean' deletes it)."
        ;;
    *)
        echo "the end-to-end demo is not built yet" >&2
        exit 1
        ;;
esac
