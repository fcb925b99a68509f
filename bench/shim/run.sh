#!/usr/bin/env bash
# npm run bench:shim — INIT and per-request overhead of both runtime shims, against the bare app and
# against the AWS Lambda Web Adapter's way (the app behind an HTTP server on loopback).
# Writes bench/results/shim.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/setup.sh
want_python_env
npx projen bundle:node-shim >/dev/null
npx projen bundle:python-shim >/dev/null

# INIT is measured on the Lambda Python minors this machine has (the layer carries bytecode for
# 3.12-3.14; 3.14 has no native interpreter here), each in a venv with Django for the test app.
init_pythons=()
for minor in 3.12 3.13; do
  venv=".venv-py$minor"
  if [ ! -x "$venv/bin/python" ]; then
    base=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$minor".*/bin/python"$minor" 2>/dev/null | tail -1 || true)
    [ -n "$base" ] || { echo "bench:shim needs a Python $minor interpreter (pyenv install $minor)" >&2; exit 1; }
    step "Python $minor venv ($venv) with Django"
    "$base" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --retries 0 --timeout 5 'django>=5.2,<6'
  fi
  init_pythons+=("$PWD/$venv/bin/python")
done

step "Python shim"
python_json=$(.venv/bin/python bench/shim/python_bench.py "${init_pythons[@]}")
step "Node shim"
node_json=$(node bench/shim/node_bench.js)

node -e '
const [python, node] = process.argv.slice(1).map((s) => JSON.parse(s));
const result = {
  command: "npm run bench:shim",
  date: new Date().toISOString(),
  machine: `${require("os").cpus().length} cores, node ${process.version}`,
  python,
  node,
};
require("fs").writeFileSync("bench/results/shim.json", JSON.stringify(result, null, 2) + "\n");
const row = (name, r) => console.log(`${name.padEnd(12)} INIT overhead ${r.initOverheadMs.toFixed(2)} ms` + (r.initShimOwnMs === undefined ? "" : ` (own ${r.initShimOwnMs.toFixed(2)} ms)`)
  + (r.requestOverheadUs === undefined ? "" : `   request overhead ${r.requestOverheadUs.toFixed(1)} us   LWA-style request ${r.lwaRequestUs.toFixed(1)} us`));
for (const [version, r] of Object.entries(python.init)) row(`python ${version}`, r);
row("python", python);
row("node", node);
console.log("wrote bench/results/shim.json");
' "$python_json" "$node_json"
