// Per-query overhead of the pg read/write router (the layer bundle, as shipped): the same primary-key
// SELECT on the same reader pool (one connection), routed (router.query) and direct (readerPool.query).
// Interleaved, one timing per query, medians. Prints one JSON object.
// Usage: node bench/router/node_bench.js BUNDLE PG_DIR   (DB_* env from test/services/start-postgres.sh)
'use strict';
const path = require('path');
const { createRequire } = require('module');

const [bundle, pgDir] = process.argv.slice(2);
const { createPgRouter } = require(path.resolve(bundle));
const pg = createRequire(path.join(path.resolve(pgDir), 'noop.js'))('pg');

const ROWS = 1000;
const QUERIES = Number(process.env.BENCH_QUERIES || 4000);
const WARMUP = 300;
const SQL = 'SELECT id, name, value FROM ww_bench_node WHERE id = $1';

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main() {
  const router = createPgRouter({ pg, pool: { max: 1 } });
  const { writer, reader } = await router.ready();
  await writer.query('CREATE TABLE IF NOT EXISTS ww_bench_node (id int PRIMARY KEY, name text NOT NULL, value int NOT NULL)');
  await writer.query(`INSERT INTO ww_bench_node SELECT i, 'row-' || i, i FROM generate_series(1, ${ROWS}) i ON CONFLICT DO NOTHING`);
  const lsn = (await writer.query('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0].lsn;
  for (let i = 0; ; i++) {
    if ((await reader.query('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn])).rows[0].ok) break;
    if (i > 300) throw new Error('the replica did not catch up');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const served = (await router.query('SELECT pg_is_in_recovery() AS standby')).rows[0];
  if (!served.standby) throw new Error('the router did not send the read to the replica');

  const direct = (k) => reader.query(SQL, [k]);
  const routed = (k) => router.query(SQL, [k]);
  for (let i = 0; i < WARMUP; i++) {
    await direct(i % ROWS + 1);
    await routed(i % ROWS + 1);
  }
  const times = { direct: [], routed: [] };
  for (let i = 0; i < QUERIES; i++) {
    const k = i % ROWS + 1;
    const order = i % 2 === 0 ? [['direct', direct], ['routed', routed]] : [['routed', routed], ['direct', direct]];
    for (const [name, fn] of order) {
      const start = process.hrtime.bigint();
      await fn(k);
      times[name].push(Number(process.hrtime.bigint() - start));
    }
  }
  const directUs = median(times.direct) / 1000;
  const routedUs = median(times.routed) / 1000;
  await router.end();
  console.log(JSON.stringify({
    query: `${SQL} (primary key), on the replica`,
    direct: 'readerPool.query(sql, [k])',
    routed: 'router.query(sql, [k]) (classified read-only, sent to the reader pool)',
    queries: QUERIES,
    directMedianUs: Number(directUs.toFixed(2)),
    routedMedianUs: Number(routedUs.toFixed(2)),
    ratio: Number((routedUs / directUs).toFixed(4)),
    pg: require(path.join(path.dirname(createRequire(path.join(path.resolve(pgDir), 'noop.js')).resolve('pg')), '..', 'package.json')).version,
    node: process.version,
  }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
