#!/bin/bash
# 05_version.t — one version everywhere (VERSION, META.json, the control file, the installed extension) and a META.json PGXN accepts.
root=$BATON_ROOT
v=$(cat "$root/VERSION")
echo "1..10"
check() { if [ "$2" = "$3" ]; then echo "ok $1 - $4"; else echo "not ok $1 - $4 (got '$2', want '$3')"; fi; }
# Every META.json field the checks need, one per line, in one python run.
mapfile -t m < <(python3 - "$root/META.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
p = m["provides"]["baton"]
for x in (m["version"], p["version"], m.get("release_status"),
          all(" <" in x and x.endswith(">") for x in m["maintainer"]), m["meta-spec"]["version"],
          p["file"], p["docfile"], sorted(m["prereqs"]["runtime"]["requires"])):
    print(x)
PY
)
check 1 "${m[0]}" "$v" "META.json version"
check 2 "${m[1]}" "$v" "META.json provides version"
check 3 "$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$root/extension/baton.control")" "$v" "control file default_version"
check 4 "$(psql -X -tAc "SELECT extversion FROM pg_extension WHERE extname = 'baton'")" "$v" "installed extension version"
# release_status: one of PGXN's three; "stable" only once CHANGELOG.md gives the version a date.
if grep -q "^## $v .*unreleased" "$root/CHANGELOG.md"; then want=unstable; else want=stable; fi
check 5 "${m[2]}" "$want" "META.json release_status follows CHANGELOG.md ($want)"
check 6 "${m[3]}" "True" "every maintainer has a contact (name <address>)"
check 7 "${m[4]}" "1.0.0" "META.json follows meta-spec 1.0.0"
# Every file META.json names is in the source tree (git ls-files: committed, not generated).
committed() { (cd "$root" && git ls-files --error-unmatch "$1" >/dev/null 2>&1 && echo committed); }
check 8 "$(committed "${m[5]}")" committed "META.json provides.file (${m[5]}) is committed"
check 9 "$(committed "${m[6]}")" committed "META.json provides.docfile (${m[6]}) is committed"
check 10 "${m[7]}" "['PostgreSQL']" "runtime prerequisites: PostgreSQL only"
