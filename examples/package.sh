#!/usr/bin/env bash
# Builds examples/<name>/build: the app with its dependencies installed for Lambda (arm64), which is
# what the example's CDK app deploys. Usage: examples/package.sh django|fastapi|express
set -euo pipefail
name=${1:?usage: examples/package.sh <example>}
dir="$(cd "$(dirname "$0")" && pwd)/$name"
[ -d "$dir/app" ] || { echo "no example named '$name' (no $dir/app)" >&2; exit 2; }
rm -rf "$dir/build.tmp" && mkdir -p "$dir/build.tmp"
if [ -f "$dir/requirements.txt" ]; then
  # Wheels for Lambda's platform, not this machine's: arm64, CPython 3.14. --no-compile: pip would
  # compile with this machine's python3, for its minor, not the function's; WebCode compiles the tree at
  # synth for the function's Python (pythonBytecode) and would leave those pycs out anyway.
  python3 -m pip install --quiet --retries 0 --timeout 5 --no-compile \
    --platform manylinux2014_aarch64 --implementation cp --python-version 3.14 --only-binary=:all: \
    -r "$dir/requirements.txt" -t "$dir/build.tmp"
fi
cp -r "$dir/app/." "$dir/build.tmp/"
if [ -f "$dir/app/manage.py" ] && grep -qs STATIC_ROOT "$dir"/app/*/settings.py; then
  # Django's static files into the code (STATIC_ROOT, content-hashed names). warm_web comes from the
  # layer, so from this repository here; the settings want database endpoints that collectstatic never uses.
  (cd "$dir/build.tmp" && PYTHONPATH="$dir/../../runtime/python:$dir/build.tmp" \
    DB_WRITER_HOST=collectstatic.invalid DB_NAME=none DB_USER=none DB_PASSWORD=none \
    python3 manage.py collectstatic --noinput --verbosity 0)
fi
if [ -f "$dir/app/package.json" ]; then
  (cd "$dir/build.tmp" && npm install --omit=dev --no-audit --no-fund --loglevel=error)
fi
rm -rf "$dir/build" && mv "$dir/build.tmp" "$dir/build"
echo "packaged $name: $(du -sh "$dir/build" | cut -f1) in $dir/build"
