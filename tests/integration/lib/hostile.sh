# hostile.sh — shared by the hostile search_path tests: a scratch database with look-alike objects, and a TAP runner for calls.
#   . "$BATON_ROOT/tests/integration/lib/hostile.sh"
#   hostile_db NAME        create the database from baton_template, plant lib/hostile.sql, drop it on exit
#   hostile_run CALL...    run each SQL call with the hostile schema first in search_path, one TAP line each
hostile_n=0

hostile_db() {
    hostile_dbname=$1
    createdb -T baton_template "$hostile_dbname" || { echo "Bail out! cannot create database"; exit 1; }
    trap 'dropdb --if-exists "$hostile_dbname" >/dev/null 2>&1' EXIT
    psql -X -q -v ON_ERROR_STOP=1 -d "$hostile_dbname" -f "$BATON_ROOT/tests/integration/lib/hostile.sql" \
        || { echo "Bail out! cannot plant the hostile objects"; exit 1; }
}

hostile_run() {
    local c out
    for c in "$@"; do
        hostile_n=$((hostile_n + 1))
        if out=$(PGOPTIONS='-c search_path=hostile,public,pg_catalog' \
                 psql -X -q -v ON_ERROR_STOP=1 -d "$hostile_dbname" -c "$c" 2>&1); then
            echo "ok $hostile_n - $c"
        else
            echo "not ok $hostile_n - $c"
            echo "$out" | sed 's/^/# /'
        fi
    done
}
