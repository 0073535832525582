#!/usr/bin/env python3
# 83_readme_getting_started.t — the SQL of the README's "Getting started" runs as written, in a database of its own, as the README says.
import os
import re
import subprocess
import sys

ROOT = os.environ.get("BATON_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DB = "tryout_%d" % os.getpid()
readme = open(os.path.join(ROOT, "README.md")).read()
section = readme[readme.index("## Getting started"):readme.index("### A worker")]
blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
print("1..%d" % (len(blocks) + 2))
print(("ok" if len(blocks) == 4 else "not ok") + " 1 - the README's Getting started has its four SQL blocks")
print(("ok" if "CREATE DATABASE tryout" in section else "not ok") + " 2 - and sends readers to a database of their own")
# The last block creates a login role (cluster-wide): none may be left from an earlier run.
ROLES = "DROP ROLE IF EXISTS payments"
subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", ROLES], capture_output=True)
subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", "CREATE DATABASE %s TEMPLATE baton_template" % DB],
               check=True, capture_output=True)
failed = 0
try:
    for i, sql in enumerate(blocks):
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", DB], input=sql, capture_output=True,
                           text=True, timeout=120)
        ok = r.returncode == 0 and "ERROR" not in r.stderr
        failed += not ok
        print("%s %d - block %d runs as written" % ("ok" if ok else "not ok", i + 3, i + 1))
        if not ok:
            for line in r.stderr.splitlines()[:10]:
                print("#   " + line)
finally:
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB],
                   capture_output=True)
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", ROLES], capture_output=True)
sys.exit(1 if failed or len(blocks) != 4 else 0)
