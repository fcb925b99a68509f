// What the warmer benchmarks share: the local Lambda endpoint in a process of its own (pool.ts), and how
// a run is measured from the endpoint's records.
import { fork } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { InvocationRecord, LocalFunction } from '../../local/local-lambda';

const MEMORY_GB = 1; // the targets' memory, for GB-seconds
/** Warm-up runs end once a run starts no environment (at 500, booting them all takes several runs). */
export const MIN_WARMUP_RUNS = 3;
const MAX_WARMUP_RUNS = 12;
const python = fs.existsSync('.venv/bin/python') ? path.resolve('.venv/bin/python') : 'python3';

/** A target of the benchmarks: the Python shim running one of anchor_targets.py's handlers. */
export function pythonTarget(name: string, app: string): LocalFunction {
  return {
    name,
    runtime: 'python',
    python,
    codeDir: __dirname,
    environment: { WARM_WEB_APP: `anchor_targets.${app}`, WARM_WEB_APP_KIND: 'handler' },
    timeoutMs: 120_000,
  };
}

/**
 * Starts the local Lambda endpoint in a child process (pool.ts), as Lambda's service is not on the
 * warmer's CPU, and points this process's SDK clients at it.
 */
export async function startPool(functions: LocalFunction[]) {
  const child = fork(path.join(__dirname, 'pool.ts'), [], { execArgv: ['-r', 'ts-node/register/transpile-only'] });
  let calls = 0;
  const call = <T>(op: string, fields: Record<string, unknown> = {}): Promise<T> => {
    const id = ++calls;
    return new Promise((resolve) => {
      const onMessage = (reply: { id: number; result: T }) => {
        if (reply.id !== id) return;
        child.off('message', onMessage);
        resolve(reply.result);
      };
      child.on('message', onMessage);
      child.send({ id, op, ...fields });
    });
  };
  const endpoint = await call<string>('start', { functions });
  Object.assign(process.env, { AWS_ENDPOINT_URL_LAMBDA: endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local' });
  return {
    takeInvocations: (name: string) => call<InvocationRecord[]>('take', { name }),
    reclaim: (name: string) => call<void>('reclaim', { name }),
    aliasArn: (name: string) => call<string>('arn', { name }),
    stop: async () => {
      await call('stop');
      child.disconnect();
    },
  };
}

export const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)];

export async function timed(run: () => Promise<unknown>) {
  const started = Date.now();
  await run();
  return Date.now() - started;
}

/** A run's records by the warmer round their ping carried. */
function byRound(records: InvocationRecord[]): InvocationRecord[][] {
  const rounds = new Map<string | undefined, InvocationRecord[]>();
  for (const record of records) {
    if (!rounds.has(record.warmRound)) rounds.set(record.warmRound, []);
    rounds.get(record.warmRound)!.push(record);
  }
  return [...rounds.values()].sort((x, y) => Math.min(...x.map((r) => r.arrivedMs)) - Math.min(...y.map((r) => r.arrivedMs)));
}

/**
 * One run, from the endpoint's records. `asked` is the hold each of our pings asked for (empty for the
 * anchors); only ours runs rounds, the anchors' pings queue behind 50 sockets in waves that are one round.
 */
export function measure(durationMs: number, records: InvocationRecord[], n: number, asked: number[], ours: boolean) {
  const distinct = new Set(records.map((r) => r.environment)).size;
  // A run no environment served (every ping failed) has no round: it needed and cost nothing.
  const rounds = records.length === 0 ? [] : ours ? byRound(records) : [records];
  // What overlap needs: each ping waits for the last of its round to arrive. A run that took top-ups
  // needed only one round to overlap: the cheapest round's need counts, the hold of all rounds is paid.
  const need = (time: (r: InvocationRecord) => number) => rounds.length === 0 ? 0 : Math.min(...rounds.map((round) => {
    const last = Math.max(...round.map(time));
    return round.reduce((sum, r) => sum + (last - time(r)), 0);
  }));
  const [first = []] = rounds;
  const heldMs = records.reduce((sum, r) => sum + r.durationMs, 0);
  return {
    distinct,
    coverage: +(Math.min(distinct, n) / n).toFixed(3),
    invocations: records.length,
    rounds: rounds.length,
    coldStarts: records.filter((r) => r.cold).length,
    holdMsTotal: Math.round(heldMs),
    askedHoldMsTotal: asked.length ? Math.round(asked.reduce((sum, ms) => sum + ms, 0)) : null,
    requiredHoldMs: Math.round(need((r) => r.arrivedMs)),
    requiredHoldInEnvMs: Math.round(need((r) => r.handlerStartedMs)),
    dispatchSpreadMs: first.length ? +(Math.max(...first.map((r) => r.arrivedMs)) - Math.min(...first.map((r) => r.arrivedMs))).toFixed(1) : 0,
    meanPingMs: records.length ? +(heldMs / records.length).toFixed(1) : 0,
    gbSeconds: +(heldMs / 1000 * MEMORY_GB).toFixed(2),
    durationMs,
  };
}

export type Run = ReturnType<typeof measure>;

/**
 * Runs as the schedule makes them, against the environments the runs before left: warm-up runs until one
 * starts no environment (at least MIN_WARMUP_RUNS, at most 12), then `count` measured ones, in order.
 */
export async function steadyRuns(count: number, runOnce: () => Promise<Run>): Promise<{ measured: Run[]; warmupRuns: number }> {
  const measured: Run[] = [];
  let warmupRuns = 0;
  while (measured.length < count) {
    const run = await runOnce();
    if (measured.length > 0 || (warmupRuns >= MIN_WARMUP_RUNS && run.coldStarts === 0) || warmupRuns >= MAX_WARMUP_RUNS) measured.push(run);
    else warmupRuns += 1;
  }
  return { measured, warmupRuns };
}

/** Writes bench/results/<name>.json with the command, date and machine; arrays of numbers on one line each. */
export function writeResults(name: string, command: string, fields: Record<string, unknown>) {
  const out = {
    command,
    date: new Date().toISOString(),
    machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`,
    ...fields,
  };
  const json = JSON.stringify(out, null, 2).replace(/\[\s+([-\d.,\snul]+?)\s+\]/g, (_, items: string) => `[${items.split(/,\s+/).join(', ')}]`);
  fs.mkdirSync('bench/results', { recursive: true });
  fs.writeFileSync(`bench/results/${name}.json`, json + '\n');
}
