#!/bin/bash
# run.sh — runs every test layer against a fresh throwaway cluster and prints prove's summary.
#
#   tests/run.sh [prove args or test files...]
#
# pgTAP files (tests/pgtap/*.pg) run through pg_prove's TAP source handler;
# tests/integration/*.t are executable scripts (any language) printing TAP,
# which drive real worker processes, restarts and crashes.  They find the
# shared cluster through PG* variables and may start clusters of their own.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export BATON_ROOT=$root
export BATON_CLUSTER_DIR=${BATON_TEST_CLUSTER_DIR:-$root/.cluster-test}

scripts/cluster.sh destroy >/dev/null 2>&1 || true
trap 'scripts/cluster.sh destroy >/dev/null 2>&1 || true' EXIT
scripts/cluster.sh start >/dev/null
eval "$(scripts/cluster.sh env)"
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION IF NOT EXISTS pgtap'

# Keep a copy of the clean database so a test that commits can start from a
# fresh one: createdb -T baton_template mydb.
psql -X -q -d postgres -c 'CREATE DATABASE baton_template TEMPLATE baton'

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=(tests/pgtap tests/integration)
fi

prove --timer --ext .pg --ext .t \
      --source pgTAP --pgtap-option "host=$PGHOST" --pgtap-option "port=$PGPORT" \
      --pgtap-option "dbname=$PGDATABASE" --pgtap-option "username=$PGUSER" \
      --source Perl \
      "${targets[@]}"
