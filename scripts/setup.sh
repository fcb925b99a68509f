#!/usr/bin/env bash
# Installs what the build and the tests need, skipping what is already in place. Sourced by
# scripts/main.sh and scripts/test-all.sh; safe to run on its own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export npm_config_loglevel=error JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20

step() { printf '\n== %s\n' "$*"; }

# npm packages, from the lock file; skipped when node_modules already matches it.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "npm ci"
  npm ci --no-audit --no-fund
fi

# One Python environment (.venv) for the shim tests, the database tests, the benchmarks (the frameworks
# the shim is tested against) and the wheel build. pip tries PyPI and any configured mirror; failing lookups are
# not retried, so an offline mirror answers fast.
PYTHON_REQUIREMENTS=(test/runtime/python/requirements.txt test/runtime/python/requirements-db.txt bench/shim/requirements.txt scripts/requirements-package.txt)
want_python_env() {
  local stamp=.venv/.requirements.sha
  local sum
  sum=$(cat "${PYTHON_REQUIREMENTS[@]}" | sha256sum | cut -d' ' -f1)
  if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
    step "Python venv (.venv) with ${PYTHON_REQUIREMENTS[*]}"
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check --retries 0 --timeout 5 $(printf -- '-r %s ' "${PYTHON_REQUIREMENTS[@]}")
    echo "$sum" > "$stamp"
  fi
}

# Servers the database and cache tests start on loopback: PostgreSQL 15 (primary + replica), Redis, and
# openssl for their test certificates. Debian package names.
want_services() {
  local missing=()
  [ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  [ -d /usr/lib/python3/dist-packages/whitenoise ] || missing+=(python3-whitenoise)  # django-full tests (no wheel in the mirror)
  if [ ${#missing[@]} -gt 0 ]; then
    step "apt: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# moto's S3 server stands in for S3 in the slim-code tests; they run it with python3 (not the venv).
want_moto() {
  if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
    step "moto (S3 server for the slim-code tests)"
    python3 -m pip install --quiet --retries 0 --timeout 5 'moto[server]'
  fi
}

# cfn-lint checks every synthesized template.
want_cfn_lint() {
  if ! command -v cfn-lint >/dev/null 2>&1; then
    step "cfn-lint"
    python3 -m pip install --quiet --retries 0 --timeout 5 cfn-lint
  fi
  command -v cfn-lint >/dev/null 2>&1 || { echo "cfn-lint is not on PATH after installing it" >&2; exit 1; }
}
