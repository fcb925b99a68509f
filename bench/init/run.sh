#!/usr/bin/env bash
# npm run bench:init — INIT of examples/django and examples/django-full without bytecode, with the
# bytecode WebCode ships, and against the floor (a warm, writable bytecode cache), on each Lambda Python
# minor this machine has natively. Writes bench/results/init.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The pyenv interpreters (3.12, 3.13 here) as python3.X on PATH, as a user's would be.
for bin in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.*/bin; do PATH="$PATH:$bin"; done
[ -d examples/django/build ] || bash examples/package.sh django
[ -d assets/python-shim-layer/python/warm_web ] || npx projen bundle:python-shim >/dev/null
# django-full's dependencies for this machine: pure-Python psycopg instead of psycopg[binary], whose
# wheels here are CPython 3.11 only (both load the system's libpq; INIT does not connect).
full="${TMPDIR:-/tmp}/warm-web-bench-init-django-full"
if [ ! -d "$full" ]; then
  rm -rf "$full.tmp" && mkdir -p "$full.tmp"
  python3 -m pip install --quiet --retries 0 --timeout 5 --no-compile --only-binary=:all: \
    --implementation cp --python-version 3.12 -t "$full.tmp" 'django>=5.2,<6' 'psycopg>=3.2' 'redis>=5'
  cp -r examples/django-full/app/. "$full.tmp/"
  mv "$full.tmp" "$full"
fi
npx ts-node --transpile-only bench/init/bench.ts examples/django/build "$full" "${ROUNDS:-11}" > bench/results/init.json.tmp
mv bench/results/init.json.tmp bench/results/init.json
cat bench/results/init.json
