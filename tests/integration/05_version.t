#!/bin/bash
# 05_version.t — one version everywhere: VERSION, META.json, the control file and the installed extension.
root=$BATON_ROOT
v=$(cat "$root/VERSION")
echo "1..4"
check() { if [ "$2" = "$3" ]; then echo "ok $1 - $4"; else echo "not ok $1 - $4 (got '$2', want '$3')"; fi; }
check 1 "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$root/META.json")" "$v" "META.json version"
check 2 "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["provides"]["baton"]["version"])' "$root/META.json")" "$v" "META.json provides version"
check 3 "$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$root/extension/baton.control")" "$v" "control file default_version"
check 4 "$(psql -X -tAc "SELECT extversion FROM pg_extension WHERE extname = 'baton'")" "$v" "installed extension version"
