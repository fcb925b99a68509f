#!/usr/bin/env bash
# The main job: install, build the library, package and synthesize examples/django (cdk-nag
# AwsSolutions checks on), and show what it made.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

step "build: bundle the runtime shims, compile with jsii"
# `compile` alone does not bundle: a clean clone has no assets/ until pre-compile runs.
npx projen pre-compile
npx projen compile

step "package examples/django (Django for Lambda arm64 / Python 3.14)"
bash examples/package.sh django

step "cdk synth examples/django (with cdk-nag AwsSolutionsChecks)"
(cd examples/django && rm -rf cdk.out && npx cdk synth --quiet)

step "what it made"
node scripts/summarize-template.js examples/django/cdk.out/WarmWebDjango.template.json
