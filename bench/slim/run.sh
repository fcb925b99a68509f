#!/usr/bin/env bash
# npm run bench:slim — loading ~250 MB of slim code from S3 (moto on loopback) into /tmp during INIT:
# our loader vs Zappa's slim_handler way vs the native-tools limit. Writes bench/results/slim.json.
# Needs the machine's python3 with boto3 and moto (the pyenv one on these machines), curl and GNU tar.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/setup.sh
PY=${WARM_WEB_MOTO_PYTHON:-python3}
"$PY" -c 'import boto3, moto.server' 2>/dev/null || { echo "bench:slim needs a python3 with boto3 and moto (set WARM_WEB_MOTO_PYTHON)" >&2; exit 1; }
step "slim-code load: ours vs Zappa vs native limit"
"$PY" bench/slim/bench.py
echo "wrote bench/results/slim.json"
