#!/usr/bin/env bash
# npm run bench:shim — INIT and per-request overhead of both runtime shims, against the bare app and
# against the AWS Lambda Web Adapter's way (the app behind an HTTP server on loopback).
# Writes bench/results/shim.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/setup.sh
want_python_env
npx projen bundle:node-shim >/dev/null

step "Python shim"
python_json=$(.venv/bin/python bench/shim/python_bench.py)
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
const row = (name, r) => console.log(`${name.padEnd(7)} INIT overhead ${r.initOverheadMs.toFixed(2)} ms   request overhead ${r.requestOverheadUs.toFixed(1)} us   LWA-style request ${r.lwaRequestUs.toFixed(1)} us`);
row("python", python);
row("node", node);
console.log("wrote bench/results/shim.json");
' "$python_json" "$node_json"
