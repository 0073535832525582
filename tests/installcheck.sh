#!/bin/bash
# installcheck.sh — the pgTAP suites against an existing server (make installcheck), in a database of their own.
#
#   tests/installcheck.sh [pg_prove args...]
#
# The server is whatever libpq's PG* variables point at (PGHOST, PGPORT, PGUSER);
# the role needs CREATEDB and must be allowed to CREATE EXTENSION baton and pgtap
# (both installed on the server).  The database (BATON_INSTALLCHECK_DB, default
# baton_installcheck) is created afresh and dropped at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
db=${BATON_INSTALLCHECK_DB:-baton_installcheck}
dropdb --if-exists "$db"
createdb "$db"
trap 'dropdb --if-exists "$db"' EXIT
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION baton'
pg_prove --ext .pg -d "$db" "$@" "$root/tests/pgtap"
