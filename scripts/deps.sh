#!/bin/bash
# deps.sh — installs the Debian packages baton needs to build and test (when root), else says how.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
packages=(
    make gcc pkg-config python3
    "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" "postgresql-$PG_MAJOR-pgtap"
    libtap-parser-sourcehandler-pgtap-perl libpq-dev libcurl4-openssl-dev valgrind
    libmicrohttpd-dev libgraphviz-dev xxd chromium nodejs pgbouncer
)
# npm comes with nodesource's nodejs; Debian's own nodejs needs the npm package.
command -v npm >/dev/null 2>&1 || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "baton: missing packages; install them with:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "baton: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The dashboard's browser test drives Debian's chromium with puppeteer-core from
# npm, installed into a cache under the repository (.gitignore'd), never at
# install time.  A failure here fails the setup: the test does not skip.
root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache/node"
if ! cmp -s "$root/tests/browser/package.json" "$cache/package.json" || [ ! -d "$cache/node_modules/puppeteer-core" ]; then
    echo "baton: installing puppeteer-core into .cache/node (browser tests)"
    mkdir -p "$cache"
    cp "$root/tests/browser/package.json" "$cache/package.json"
    (cd "$cache" && PUPPETEER_SKIP_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
