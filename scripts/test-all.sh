#!/usr/bin/env bash
# Runs every test: construct tests (jest, with cfn-lint and cdk-nag gates on the examples), the
# runtime shims against real Django, Flask, FastAPI and Express, the database routers and cache
# helpers against real PostgreSQL (primary + replica) and Redis on loopback, and the Python bindings.
# Installs what it needs first. CI runs exactly this (.ci/run).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

want_python_env
want_services
want_moto
want_cfn_lint

step "build: bundle the runtime shims, compile with jsii, API.md, every sample compiled (jsii-rosetta --strict)"
# `compile` alone does not bundle: a clean clone has no assets/ until pre-compile runs.
npx projen pre-compile
npx projen compile
npx projen post-compile

step "Python package: bindings with the samples in Python, and the wheel"
npx projen package:python

step "jest: constructs, examples, Node shim"
npx projen test

step "pytest: Python shim"
npx projen test:python
