#!/bin/bash
# 05_version.t — one version everywhere (VERSION, META.json, the control file, the installed extension) and a META.json PGXN accepts.
root=$BATON_ROOT
v=$(cat "$root/VERSION")
echo "1..10"
check() { if [ "$2" = "$3" ]; then echo "ok $1 - $4"; else echo "not ok $1 - $4 (got '$2', want '$3')"; fi; }
meta() { python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"m": m}))' "$root/META.json" "$1"; }
check 1 "$(meta 'm["version"]')" "$v" "META.json version"
check 2 "$(meta 'm["provides"]["baton"]["version"]')" "$v" "META.json provides version"
check 3 "$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$root/extension/baton.control")" "$v" "control file default_version"
check 4 "$(psql -X -tAc "SELECT extversion FROM pg_extension WHERE extname = 'baton'")" "$v" "installed extension version"
# release_status: one of PGXN's three; "stable" only once CHANGELOG.md gives the version a date.
if grep -q "^## $v .*unreleased" "$root/CHANGELOG.md"; then want=unstable; else want=stable; fi
check 5 "$(meta 'm["release_status"]')" "$want" "META.json release_status follows CHANGELOG.md ($want)"
check 6 "$(meta 'all(" <" in x and x.endswith(">") for x in m["maintainer"])')" "True" "every maintainer has a contact (name <address>)"
check 7 "$(meta 'm["meta-spec"]["version"]')" "1.0.0" "META.json follows meta-spec 1.0.0"
# Every file META.json names is in the source tree (git ls-files: committed, not generated).
for k in file docfile; do
    f=$(meta "m['provides']['baton']['$k']")
    n=$([ "$k" = file ] && echo 8 || echo 9)
    check $n "$(cd "$root" && git ls-files --error-unmatch "$f" >/dev/null 2>&1 && echo committed)" committed "META.json provides.$k ($f) is committed"
done
check 10 "$(meta 'sorted(m["prereqs"]["runtime"]["requires"])')" "['PostgreSQL']" "runtime prerequisites: PostgreSQL only"
