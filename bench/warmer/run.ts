// npm run bench:warmer — our warmer (its hold rule) against the planner it replaced (baseline-warmer.ts) and
// the two anchor methods, on the local Lambda endpoint (real environment processes, real shim), for
// N = 10, 50, 200, 500; ours and the planner in BENCH_SERIES series, the anchors in the first. Writes
// bench/results/warmer.json.
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { MiddlewareStack } from '@smithy/types';
import { measure, MIN_WARMUP_RUNS, pythonTarget, startPool, steadyRuns, timed, writeResults } from './harness';

const SIZES = (process.env.BENCH_SIZES ?? '10,50,200,500').split(',').map(Number);
const ALL_METHODS = ['ours', 'planner', 'lambda-warmer', 'plugin-warmup'] as const;
type Method = typeof ALL_METHODS[number];
const METHODS = (process.env.BENCH_METHODS?.split(',') ?? ALL_METHODS) as Method[];
/** Methods measured in every series; the anchors' figures do not move between series. */
const REPEATED: readonly Method[] = ['ours', 'planner'];
const SERIES = Number(process.env.BENCH_SERIES ?? 3);
const HOLD_MS = 250;
// Run-to-run spread is wide on this machine (hundreds of processes on 2 cores): enough runs for a median.
const MEASURED_RUNS = Number(process.env.BENCH_RUNS ?? 10);

async function main() {
  // The pool runs in a child process; this process is the warmer's.
  const local = await startPool(METHODS.flatMap((method) => SIZES.map((n) =>
    pythonTarget(`${method}-${n}`, method === 'lambda-warmer' ? 'lambda_warmer' : 'plugin_warmup'))));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const warmer: typeof import('../../handlers/warmer') = require('../../handlers/warmer');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const planner: typeof import('./baseline-warmer') = require('./baseline-warmer');
  const sdkDefaults = new LambdaClient({});
  const quiet = process.stdout.write.bind(process.stdout);
  // What our warmer asked each environment to hold, from the ping and the answer's arrival time: the
  // billed hold adds the time a process waits for a core after its deadline (hundreds share 2 here).
  const askedMs: number[] = [];
  // The DryRun invokes that open a run's connections carry no payload; each must succeed, or the pings
  // would open their connections inside the round and this would measure a warmer that does not exist.
  let connected = 0;
  const instrument = (stack: MiddlewareStack<any, any>) => stack.add((next) => async (args) => {
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
  instrument(warmer.lambda.middlewareStack);
  instrument(planner.lambda.middlewareStack);

  const runs: Record<Method, (arn: string, n: number) => Promise<unknown>> = {
    // As the handler runs it: each run on new connections.
    'ours': async (arn, n) => {
      connected = 0;
      await warmer.warmAll([{ functionArn: arn, concurrency: n, holdMs: HOLD_MS }]);
      if (connected !== n) throw new Error(`bench: ${connected} of ${n} DryRun invokes succeeded before the round`);
    },
    // The same, with the planner this rule replaced.
    'planner': async (arn, n) => {
      connected = 0;
      await planner.warmAll([{ functionArn: arn, concurrency: n, holdMs: HOLD_MS }]);
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

  interface Series {
    readonly holdToRequired: number | null;
    readonly askedToRequired: number | null;
    readonly topUpRuns: number;
    readonly minDistinct: number;
    readonly holdMsPerRun: number;
    readonly requiredHoldMsPerRun: number;
  }
  const results: Array<Record<string, unknown> & { method: Method; n: number; seriesIndex: number; series: Series }> = [];
  const measureSeries = async (method: Method, n: number, seriesIndex: number) => {
    const ours = method === 'ours' || method === 'planner';
    const name = `${method}-${n}`;
    const arn = await local.aliasArn(name);
    process.stdout.write = (() => true) as typeof process.stdout.write; // the warmer's EMF lines
    const first = measure(await timed(() => runs[method](arn, n)), await local.takeInvocations(name), n, askedMs.splice(0), ours);
    // Ours learns the dispatch spread from each run; the median measured run by ping cost is reported.
    // Lambda-warmer's async (Event) invokes may still be running after a run: let them finish.
    const { measured, warmupRuns } = await steadyRuns(MEASURED_RUNS, async () => {
      await new Promise((r) => setTimeout(r, 300));
      await local.takeInvocations(name);
      const durationMs = await timed(() => runs[method](arn, n));
      await new Promise((r) => setTimeout(r, method === 'lambda-warmer' ? 500 : 0));
      return measure(durationMs, await local.takeInvocations(name), n, askedMs.splice(0), ours);
    });
    // Every measured run in order: distinct, rounds, hold billed, hold asked and need (ms).
    const runsInOrder = measured.map((m) => [m.distinct, m.rounds, m.holdMsTotal, m.askedHoldMsTotal, m.requiredHoldMs]);
    measured.sort((x, y) => x.holdMsTotal - y.holdMsTotal);
    // The series: what the pings cost over all measured runs against what they needed, and the spread.
    const sum = (key: 'holdMsTotal' | 'askedHoldMsTotal' | 'requiredHoldMs') => measured.reduce((total, m) => total + (m[key] ?? 0), 0);
    const perRun = measured.filter((m) => m.requiredHoldMs > 0).map((m) => m.holdMsTotal / m.requiredHoldMs).sort((x, y) => x - y);
    const series = {
      runs: measured.length,
      minDistinct: Math.min(...measured.map((m) => m.distinct)),
      holdToRequired: sum('requiredHoldMs') ? +(sum('holdMsTotal') / sum('requiredHoldMs')).toFixed(2) : null,
      askedToRequired: sum('askedHoldMsTotal') ? +(sum('askedHoldMsTotal') / sum('requiredHoldMs')).toFixed(2) : null,
      topUpRuns: measured.filter((m) => m.rounds > 1).length,
      holdMsPerRun: Math.round(sum('holdMsTotal') / measured.length),
      requiredHoldMsPerRun: Math.round(sum('requiredHoldMs') / measured.length),
      perRunHoldToRequired: perRun.length ? {
        min: +perRun[0].toFixed(2), median: +perRun[Math.floor(perRun.length / 2)].toFixed(2), max: +perRun[perRun.length - 1].toFixed(2),
      } : null,
    };
    const steady = { ...measured[Math.floor(measured.length / 2)], minDistinct: series.minDistinct, series, runsInOrder };
    process.stdout.write = quiet;
    await local.reclaim(name);
    results.push({ method, n, seriesIndex, ...steady, firstRoundDistinct: first.distinct, warmupRuns });
    console.error(`${method.padEnd(14)} N=${String(n).padEnd(4)} series ${seriesIndex} distinct ${steady.distinct} (min ${series.minDistinct}, first round ${first.distinct}), hold ${steady.holdMsTotal} ms, needed ${steady.requiredHoldMs} ms, spread ${steady.dispatchSpreadMs} ms, series billed/needed ${series.holdToRequired} (per run ${JSON.stringify(series.perRunHoldToRequired)}), asked/needed ${series.askedToRequired}, runs with a top-up ${series.topUpRuns}`);
  };
  for (const n of SIZES) {
    for (const method of METHODS) await measureSeries(method, n, 1);
    // Later series alternate ours and the planner, on the same pool, so that both see the same machine.
    for (let i = 2; i <= SERIES; i++) {
      for (const method of METHODS.filter((m) => REPEATED.includes(m))) await measureSeries(method, n, i);
    }
  }
  await local.stop();

  // Per N and method, over its series: the worst run's distinct, billed / needed and asked / needed of each
  // series, runs with a top-up, and the mean billed hold per run.
  const table = SIZES.map((n) => {
    const row: Record<string, unknown> = { n };
    for (const method of METHODS) {
      const series = results.filter((r) => r.method === method && r.n === n).map((r) => r.series);
      row[method] = {
        minDistinct: Math.min(...series.map((x) => x.minDistinct)),
        coverage: +(Math.min(...series.map((x) => x.minDistinct), n) / n).toFixed(3),
        holdToRequired: series.map((x) => x.holdToRequired),
        askedToRequired: series.map((x) => x.askedToRequired),
        topUpRuns: series.map((x) => x.topUpRuns),
        holdMsPerRun: series.map((x) => x.holdMsPerRun),
        requiredHoldMsPerRun: series.map((x) => x.requiredHoldMsPerRun),
      };
    }
    return row;
  });
  // Arrays of numbers on one line each: 15 runs of many series stay readable.
  writeResults('warmer', 'npm run bench:warmer', {
    holdMs: HOLD_MS,
    series: SERIES,
    note: 'ours = handlers/warmer (the hold rule); planner = the choosePlan planner it replaced (bench/warmer/baseline-warmer.ts); both in every series, the anchors in series 1. Steady state: after a cold first run and warm-up runs (at least ' + MIN_WARMUP_RUNS + ', until a run starts no environment), the median of ' + MEASURED_RUNS + ' measured runs by ping cost (minDistinct: the worst of them; series: summed hold over summed need across all of them, and the per-run ratios). distinct = environments that served a ping in the run (ground truth from the pool); holdMsTotal = summed handler durations measured inside the environments (what Lambda bills for the pings); askedHoldMsTotal (ours) = summed hold the pings asked for, from each ping and the receivedAtMs of its answer (billed minus the time each process waited for one of the 2 cores after its deadline); requiredHoldMs = summed wait each ping needed for all pings to overlap, from the pool dispatch times (last arrival minus own arrival; in a run with top-up rounds, the least of its rounds, while holdMsTotal pays them all); rounds = warmer rounds in the run; runsInOrder = [distinct, rounds, holdMsTotal, askedHoldMsTotal, requiredHoldMs] per measured run; requiredHoldInEnvMs = the same from the times the handlers started inside the environments (what a warmer can observe; on this 2-core machine hundreds of processes wake late).',
    results,
    table,
  });
  console.log(JSON.stringify(table, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
