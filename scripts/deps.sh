#!/bin/bash
# deps.sh — installs the Debian packages baton needs to build and test (when root), else says how.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
packages=(
    make gcc pkg-config python3
    "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" "postgresql-$PG_MAJOR-pgtap"
    libtap-parser-sourcehandler-pgtap-perl libpq-dev libcurl4-openssl-dev valgrind
    pgbouncer
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "baton: missing packages; install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "baton: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
