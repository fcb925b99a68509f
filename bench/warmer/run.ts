// npm run bench:warmer — our warmer against the two anchor methods, on the local Lambda endpoint
// (real environment processes, real shim), for N = 10, 50, 200, 500. Writes bench/results/warmer.json.
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { measure, MIN_WARMUP_RUNS, pythonTarget, startPool, steadyRuns, timed, writeResults } from './harness';

const SIZES = (process.env.BENCH_SIZES ?? '10,50,200,500').split(',').map(Number);
const ALL_METHODS = ['ours', 'lambda-warmer', 'plugin-warmup'] as const;
type Method = typeof ALL_METHODS[number];
const METHODS = (process.env.BENCH_METHODS?.split(',') ?? ALL_METHODS) as Method[];
const HOLD_MS = 250;
// Run-to-run spread is wide on this machine (hundreds of processes on 2 cores): enough runs for a median.
const MEASURED_RUNS = 15;

async function main() {
  // The pool runs in a child process; this process is the warmer's.
  const local = await startPool(METHODS.flatMap((method) => SIZES.map((n) =>
    pythonTarget(`${method}-${n}`, method === 'lambda-warmer' ? 'lambda_warmer' : 'plugin_warmup'))));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const warmer: typeof import('../../handlers/warmer') = require('../../handlers/warmer');
  const sdkDefaults = new LambdaClient({});
  const quiet = process.stdout.write.bind(process.stdout);
  // What our warmer asked each environment to hold, from the ping and the answer's arrival time: the
  // billed hold adds the time a process waits for a core after its deadline (hundreds share 2 here).
  const askedMs: number[] = [];
  // The DryRun invokes that open a run's connections carry no payload; each must succeed, or the pings
  // would open their connections inside the round and this would measure a warmer that does not exist.
  let connected = 0;
  warmer.lambda.middlewareStack.add((next) => async (args) => {
    const payload = (args.input as { Payload?: Uint8Array }).Payload;
    if (!payload) {
      const out = await next(args);
      connected += 1;
      return out;
    }
    const ping = JSON.parse(Buffer.from(payload).toString('utf-8')).warmWeb;
    const out = await next(args);
    const answer = JSON.parse(Buffer.from((out.output as { Payload?: Uint8Array }).Payload ?? []).toString('utf-8') || 'null')?.warmWeb;
    if (typeof answer?.receivedAtMs === 'number') {
      askedMs.push(Math.max(0, Math.min(ping.holdUntilMs, answer.receivedAtMs + (ping.holdForMs ?? Infinity)) - answer.receivedAtMs));
    }
    return out;
  }, { step: 'initialize', name: 'benchAskedHold' });

  const runs: Record<Method, (arn: string, n: number) => Promise<unknown>> = {
    // As the handler runs it: each run on new connections.
    'ours': async (arn, n) => {
      connected = 0;
      await warmer.warmAll([{ functionArn: arn, concurrency: n, holdMs: HOLD_MS }]);
      if (connected !== n) throw new Error(`bench: ${connected} of ${n} DryRun invokes succeeded before the round`);
    },
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
      const arn = await local.aliasArn(name);
      process.stdout.write = (() => true) as typeof process.stdout.write; // the warmer's EMF lines
      const first = measure(await timed(() => runs[method](arn, n)), await local.takeInvocations(name), n, askedMs.splice(0), method === 'ours');
      // Ours learns the dispatch spread from each run; the median measured run by ping cost is reported.
      // Lambda-warmer's async (Event) invokes may still be running after a run: let them finish.
      const { measured, warmupRuns } = await steadyRuns(MEASURED_RUNS, async () => {
        await new Promise((r) => setTimeout(r, 300));
        await local.takeInvocations(name);
        const durationMs = await timed(() => runs[method](arn, n));
        await new Promise((r) => setTimeout(r, method === 'lambda-warmer' ? 500 : 0));
        return measure(durationMs, await local.takeInvocations(name), n, askedMs.splice(0), method === 'ours');
      });
      // Every measured run in order: distinct, rounds, hold billed, hold asked and need (ms).
      const runsInOrder = measured.map((m) => [m.distinct, m.rounds, m.holdMsTotal, m.askedHoldMsTotal, m.requiredHoldMs]);
      measured.sort((x, y) => x.holdMsTotal - y.holdMsTotal);
      // The series: what the pings cost over all measured runs against what they needed, and the spread.
      const sum = (key: 'holdMsTotal' | 'askedHoldMsTotal' | 'requiredHoldMs') => measured.reduce((total, m) => total + (m[key] ?? 0), 0);
      const perRun = measured.filter((m) => m.requiredHoldMs > 0).map((m) => m.holdMsTotal / m.requiredHoldMs).sort((x, y) => x - y);
      const series = {
        runs: measured.length,
        holdToRequired: sum('requiredHoldMs') ? +(sum('holdMsTotal') / sum('requiredHoldMs')).toFixed(2) : null,
        askedToRequired: sum('askedHoldMsTotal') ? +(sum('askedHoldMsTotal') / sum('requiredHoldMs')).toFixed(2) : null,
        topUpRuns: measured.filter((m) => m.rounds > 1).length,
        perRunHoldToRequired: perRun.length ? {
          min: +perRun[0].toFixed(2), median: +perRun[Math.floor(perRun.length / 2)].toFixed(2), max: +perRun[perRun.length - 1].toFixed(2),
        } : null,
      };
      const steady = { ...measured[Math.floor(measured.length / 2)], minDistinct: Math.min(...measured.map((m) => m.distinct)), series, runsInOrder };
      process.stdout.write = quiet;
      await local.reclaim(name);
      results[`${method}/${n}`] = { method, n, ...steady, firstRoundDistinct: first.distinct, warmupRuns };
      console.error(`${method.padEnd(14)} N=${String(n).padEnd(4)} distinct ${steady.distinct} (first round ${first.distinct}), coverage ${steady.coverage.toFixed(2)}, hold ${steady.holdMsTotal} ms, needed ${steady.requiredHoldMs} ms (in env ${steady.requiredHoldInEnvMs} ms), spread ${steady.dispatchSpreadMs} ms, mean ping ${steady.meanPingMs} ms, series hold/needed ${series.holdToRequired} (per run ${JSON.stringify(series.perRunHoldToRequired)}), asked/needed ${series.askedToRequired}, runs with a top-up ${series.topUpRuns}`);
    }
  }
  await local.stop();

  const table = SIZES.map((n) => {
    const row: Record<string, unknown> = { n };
    for (const method of METHODS) {
      const r = results[`${method}/${n}`] as { distinct: number; coverage: number; holdMsTotal: number; requiredHoldMs: number; requiredHoldInEnvMs: number };
      row[method] = {
        distinct: r.distinct,
        minDistinct: (r as { minDistinct?: number }).minDistinct,
        coverage: r.coverage,
        holdMsTotal: r.holdMsTotal,
        holdToRequired: r.requiredHoldMs ? +(r.holdMsTotal / r.requiredHoldMs).toFixed(2) : null,
        holdToRequiredInEnv: r.requiredHoldInEnvMs ? +(r.holdMsTotal / r.requiredHoldInEnvMs).toFixed(2) : null,
        seriesHoldToRequired: (r as { series?: { holdToRequired: number | null } }).series?.holdToRequired ?? null,
        seriesAskedToRequired: (r as { series?: { askedToRequired: number | null } }).series?.askedToRequired ?? null,
      };
    }
    return row;
  });
  // Arrays of numbers on one line each: 15 runs of 12 series stay readable.
  writeResults('warmer', 'npm run bench:warmer', {
    holdMs: HOLD_MS,
    note: 'Steady state: after a cold first run and warm-up runs (at least ' + MIN_WARMUP_RUNS + ', until a run starts no environment), the median of ' + MEASURED_RUNS + ' measured runs by ping cost (minDistinct: the worst of them; series: summed hold over summed need across all of them, and the per-run ratios). distinct = environments that served a ping in the run (ground truth from the pool); holdMsTotal = summed handler durations measured inside the environments (what Lambda bills for the pings); askedHoldMsTotal (ours) = summed hold the pings asked for, from each ping and the receivedAtMs of its answer (billed minus the time each process waited for one of the 2 cores after its deadline); requiredHoldMs = summed wait each ping needed for all pings to overlap, from the pool dispatch times (last arrival minus own arrival; in a run with top-up rounds, the least of its rounds, while holdMsTotal pays them all); rounds = warmer rounds in the run; runsInOrder = [distinct, rounds, holdMsTotal, askedHoldMsTotal, requiredHoldMs] per measured run; requiredHoldInEnvMs = the same from the times the handlers started inside the environments (what a warmer can observe; on this 2-core machine hundreds of processes wake late).',
    results: Object.values(results),
    table,
  });
  console.log(JSON.stringify(table, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
