// npm run bench:warmer — our warmer against the two anchor methods, on the local Lambda endpoint
// (real environment processes, real shim), for N = 10, 50, 200, 500. Writes bench/results/warmer.json.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { InvocationRecord, LocalLambda } from '../../lib/local/local-lambda';

const SIZES = (process.env.BENCH_SIZES ?? '10,50,200,500').split(',').map(Number);
const ALL_METHODS = ['ours', 'lambda-warmer', 'plugin-warmup'] as const;
type Method = typeof ALL_METHODS[number];
const METHODS = (process.env.BENCH_METHODS?.split(',') ?? ALL_METHODS) as Method[];
const HOLD_MS = 250;
const WARMUP_RUNS = 3;
// Run-to-run spread is wide on this machine (hundreds of processes on 2 cores): enough runs for a median.
const MEASURED_RUNS = 15;
const MEMORY_GB = 1; // the targets' memory, for GB-seconds
const python = fs.existsSync('.venv/bin/python') ? path.resolve('.venv/bin/python') : 'python3';

const functions = METHODS.flatMap((method) => SIZES.map((n) => ({
  name: `${method}-${n}`,
  runtime: 'python' as const,
  python,
  codeDir: __dirname,
  environment: { WARM_WEB_APP: method === 'lambda-warmer' ? 'anchor_targets.lambda_warmer' : 'anchor_targets.plugin_warmup', WARM_WEB_APP_KIND: 'handler' },
  timeoutMs: 120_000,
})));
const local = new LocalLambda(functions);

async function main() {
  await local.start();
  Object.assign(process.env, { AWS_ENDPOINT_URL_LAMBDA: local.endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local' });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const warmer: typeof import('../../lib/warmer.lambda') = require('../../lib/warmer.lambda');
  const sdkDefaults = new LambdaClient({});
  const quiet = process.stdout.write.bind(process.stdout);

  const runs: Record<Method, (arn: string, n: number) => Promise<unknown>> = {
    'ours': (arn, n) => warmer.warmTarget({ functionArn: arn, concurrency: n, holdMs: HOLD_MS }),
    // serverless-plugin-warmup: N parallel RequestResponse invokes, SDK defaults (50 sockets).
    'plugin-warmup': (arn, n) => Promise.all(Array.from({ length: n }, () => sdkDefaults.send(new InvokeCommand({
      FunctionName: arn, InvocationType: 'RequestResponse', Payload: Buffer.from('{"source":"serverless-plugin-warmup"}'),
    })))),
    // lambda-warmer: one invoke; the target fans out from inside (anchor_targets.py).
    'lambda-warmer': (arn, n) => sdkDefaults.send(new InvokeCommand({
      FunctionName: arn, InvocationType: 'RequestResponse', Payload: Buffer.from(JSON.stringify({ warmer: true, concurrency: n })),
    })),
  };

  const results: Record<string, Record<string, unknown>> = {};
  for (const n of SIZES) {
    for (const method of METHODS) {
      const name = `${method}-${n}`;
      const arn = local.aliasArn(name);
      process.stdout.write = (() => true) as typeof process.stdout.write; // the warmer's EMF lines
      const first = measure(await timed(() => runs[method](arn, n)), local.takeInvocations(name), n);
      // Runs as the schedule makes them, against the environments the first one left (ours learns the
      // dispatch spread from each). Warm-up runs, then measured ones; the median by ping cost is reported.
      // Lambda-warmer's async (Event) invokes may still be running after a run: let them finish.
      const measured = [];
      for (let i = 0; i < WARMUP_RUNS + MEASURED_RUNS; i++) {
        await new Promise((r) => setTimeout(r, 300));
        local.takeInvocations(name);
        const durationMs = await timed(() => runs[method](arn, n));
        await new Promise((r) => setTimeout(r, method === 'lambda-warmer' ? 500 : 0));
        if (i >= WARMUP_RUNS) measured.push(measure(durationMs, local.takeInvocations(name), n));
      }
      measured.sort((x, y) => x.holdMsTotal - y.holdMsTotal);
      // The series: what the pings cost over all measured runs against what they needed, and the spread.
      const sum = (key: 'holdMsTotal' | 'requiredHoldMs') => measured.reduce((total, m) => total + m[key], 0);
      const perRun = measured.filter((m) => m.requiredHoldMs > 0).map((m) => m.holdMsTotal / m.requiredHoldMs).sort((x, y) => x - y);
      const series = {
        runs: measured.length,
        holdToRequired: sum('requiredHoldMs') ? +(sum('holdMsTotal') / sum('requiredHoldMs')).toFixed(2) : null,
        perRunHoldToRequired: perRun.length ? {
          min: +perRun[0].toFixed(2), median: +perRun[Math.floor(perRun.length / 2)].toFixed(2), max: +perRun[perRun.length - 1].toFixed(2),
        } : null,
      };
      const steady = { ...measured[Math.floor(measured.length / 2)], minDistinct: Math.min(...measured.map((m) => m.distinct)), series };
      process.stdout.write = quiet;
      local.reclaim(name);
      results[`${method}/${n}`] = { method, n, ...steady, firstRoundDistinct: first.distinct };
      console.error(`${method.padEnd(14)} N=${String(n).padEnd(4)} distinct ${steady.distinct} (first round ${first.distinct}), coverage ${steady.coverage.toFixed(2)}, hold ${steady.holdMsTotal} ms, needed ${steady.requiredHoldMs} ms (in env ${steady.requiredHoldInEnvMs} ms), spread ${steady.dispatchSpreadMs} ms, mean ping ${steady.meanPingMs} ms, series hold/needed ${series.holdToRequired} (per run ${JSON.stringify(series.perRunHoldToRequired)})`);
    }
  }
  await local.stop();

  const table = SIZES.map((n) => {
    const row: Record<string, unknown> = { n };
    for (const method of METHODS) {
      const r = results[`${method}/${n}`] as { distinct: number; coverage: number; holdMsTotal: number; requiredHoldMs: number; requiredHoldInEnvMs: number };
      row[method] = { distinct: r.distinct, minDistinct: (r as { minDistinct?: number }).minDistinct, coverage: r.coverage, holdMsTotal: r.holdMsTotal, holdToRequired: r.requiredHoldMs ? +(r.holdMsTotal / r.requiredHoldMs).toFixed(2) : null,
        holdToRequiredInEnv: r.requiredHoldInEnvMs ? +(r.holdMsTotal / r.requiredHoldInEnvMs).toFixed(2) : null,
        seriesHoldToRequired: (r as { series?: { holdToRequired: number | null } }).series?.holdToRequired ?? null,
      };
    }
    return row;
  });
  const out = {
    command: 'npm run bench:warmer',
    date: new Date().toISOString(),
    machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`,
    holdMs: HOLD_MS,
    note: 'Steady state: after a cold first run and 3 warm-up runs, the median of ' + MEASURED_RUNS + ' measured runs by ping cost (minDistinct: the worst of them; series: summed hold over summed need across all of them, and the per-run ratios). distinct = environments that served a ping in the run (ground truth from the pool); holdMsTotal = summed handler durations measured inside the environments (what Lambda bills for the pings); requiredHoldMs = summed wait each ping needed for all pings to overlap, from the pool dispatch times (last arrival minus own arrival); requiredHoldInEnvMs = the same from the times the handlers started inside the environments (what a warmer can observe; on this 2-core machine hundreds of processes wake late).',
    results: Object.values(results),
    table,
  };
  fs.mkdirSync('bench/results', { recursive: true });
  fs.writeFileSync('bench/results/warmer.json', JSON.stringify(out, null, 2) + '\n');
  console.log(JSON.stringify(table, null, 2));
}

async function timed(run: () => Promise<unknown>) {
  const started = Date.now();
  await run();
  return Date.now() - started;
}

function measure(durationMs: number, records: InvocationRecord[], n: number) {
  const distinct = new Set(records.map((r) => r.environment)).size;
  const lastArrival = Math.max(...records.map((r) => r.arrivedMs));
  const lastHandlerStart = Math.max(...records.map((r) => r.handlerStartedMs));
  return {
    distinct,
    coverage: +(Math.min(distinct, n) / n).toFixed(3),
    invocations: records.length,
    coldStarts: records.filter((r) => r.cold).length,
    holdMsTotal: Math.round(records.reduce((sum, r) => sum + r.durationMs, 0)),
    requiredHoldMs: records.reduce((sum, r) => sum + (lastArrival - r.arrivedMs), 0),
    requiredHoldInEnvMs: Math.round(records.reduce((sum, r) => sum + (lastHandlerStart - r.handlerStartedMs), 0)),
    dispatchSpreadMs: lastArrival - Math.min(...records.map((r) => r.arrivedMs)),
    meanPingMs: +(records.reduce((sum, r) => sum + r.durationMs, 0) / records.length).toFixed(1),
    gbSeconds: +(records.reduce((sum, r) => sum + r.durationMs, 0) / 1000 * MEMORY_GB).toFixed(2),
    durationMs,
  };
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
