#!/bin/bash
# 10_isolation.t — runs the isolation specs (claim races, limits, fencing, dedup) with pg_isolation_regress.
set -uo pipefail
dir=$BATON_ROOT/tests/isolation
pgxs=$(dirname "$(pg_config --pgxs)")/..
regress=$pgxs/test/isolation/pg_isolation_regress
specs=$(cd "$dir/specs" && ls *.spec | sed 's/\.spec$//')
n=$(echo "$specs" | wc -l)
echo "1..$n"
out=$(mktemp -d)
chmod 777 "$out"
"$regress" --inputdir="$dir" --outputdir="$out" \
    --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" --dbname=baton_isolation --load-extension=baton \
    $specs >"$out/run.log" 2>&1
i=0
for s in $specs; do
    i=$((i + 1))
    if grep -Eq "^(ok|test) +[0-9]* *[-]* *$s +\.\.\. ok|^ok +[0-9]+ +- +$s " "$out/run.log"; then
        echo "ok $i - isolation $s"
    else
        echo "not ok $i - isolation $s"
        [ -f "$out/regression.diffs" ] && sed 's/^/# /' "$out/regression.diffs"
    fi
done
sed 's/^/# /' "$out/run.log" | tail -3
rm -rf "$out"
