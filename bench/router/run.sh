#!/usr/bin/env bash
# npm run bench:router — per-query overhead of the read-replica routers against a direct connection: the
# Django router (warm_web.django.ReadReplicaRouter) and the Node pg router (the layer bundle), each running the
# same primary-key SELECT routed and direct on the same replica connection, interleaved, medians of one run.
# Starts PostgreSQL (primary + replica) with test/services/start-postgres.sh, and stops it again if it
# started it. Writes bench/results/router.json (djangoOverheadRatio, nodeOverheadRatio: routed / direct).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/setup.sh
want_python_env

step "PostgreSQL primary + replica"
services=$(bash test/services/start-postgres.sh)
if grep -q '^WW_PG_STARTED=1$' <<<"$services"; then
  trap 'bash test/services/stop-postgres.sh' EXIT
fi
set -a
source <(grep -v '^WW_PG_STARTED=' <<<"$services")
set +a

# pg is the app's dependency: the repo's node_modules when it has it, else a scratch install.
if node -e "require.resolve('pg')" >/dev/null 2>&1; then
  pg_dir=$PWD
else
  pg_dir=${WARM_WEB_PG_DIR:-${TMPDIR:-/tmp}/wwpg}
  if ! (cd "$pg_dir" 2>/dev/null && node -e "require.resolve('pg')" >/dev/null 2>&1); then
    step "pg (scratch install in $pg_dir)"
    npm install --prefix "$pg_dir" --no-audit --no-fund --no-save pg >/dev/null
  fi
fi
bundle=$(mktemp -d)/pg-router.js
npx esbuild runtime/node/pg-router.ts --bundle --platform=node --target=node20 --format=cjs --external:pg \
  --outfile="$bundle" --log-level=warning

step "Django router"
django_json=$(.venv/bin/python bench/router/django_bench.py)
step "Node pg router"
node_json=$(node bench/router/node_bench.js "$bundle" "$pg_dir")
rm -rf "$(dirname "$bundle")"

node -e '
const [django, node] = process.argv.slice(1).map((s) => JSON.parse(s));
const result = {
  command: "npm run bench:router",
  date: new Date().toISOString(),
  machine: `${require("os").cpus().length} cores, node ${process.version}`,
  goal: "routed / direct <= 1.05",
  djangoOverheadRatio: django.ratio,
  nodeOverheadRatio: node.ratio,
  django,
  node,
};
require("fs").mkdirSync("bench/results", { recursive: true });
require("fs").writeFileSync("bench/results/router.json", JSON.stringify(result, null, 2) + "\n");
const row = (name, r) => console.log(`${name.padEnd(7)} direct ${r.directMedianUs.toFixed(1)} us   routed ${r.routedMedianUs.toFixed(1)} us   ratio ${r.ratio.toFixed(3)}`);
row("django", django);
row("node", node);
console.log("wrote bench/results/router.json");
' "$django_json" "$node_json"
