// The warmer's real SDK client against real environments (processes running the shim and a real app)
// behind the local Lambda Invoke endpoint: the whole warm path, with nothing mocked.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { pythonForTests } from './python';
import type * as WarmerModule from '../../handlers/warmer';
import { LocalLambda } from '../../local/local-lambda';

jest.setTimeout(120_000);

const requestLog = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-warm-')), 'requests.log');
fs.writeFileSync(requestLog, '');
const app = { WARM_WEB_APP: 'counting_app:app', WARM_WEB_APP_KIND: 'wsgi', REQUEST_LOG: requestLog };
const local = new LocalLambda([
  { name: 'web', runtime: 'python', python: pythonForTests(), codeDir: path.join(__dirname, 'apps'), environment: app },
  // An account with room for 4 environments: the 5th at once is throttled (429).
  { name: 'capped', runtime: 'python', python: pythonForTests(), codeDir: path.join(__dirname, 'apps'), environment: app, maxEnvironments: 4 },
  // Pings to a new environment stay silent for 10 s, its INIT.
  {
    name: 'hanging',
    runtime: 'python',
    python: pythonForTests(),
    codeDir: path.join(__dirname, 'apps'),
    environment: { WARM_WEB_APP: 'slow_init_app:app', WARM_WEB_APP_KIND: 'wsgi', INIT_SECONDS: '10' },
  },
]);
let warmer: typeof WarmerModule;
let stdout: jest.SpyInstance;
let warnings: jest.SpyInstance;

beforeAll(async () => {
  await local.start();
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_LAMBDA: local.endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local',
  });
  // Imported after the endpoint is set: the client is created at module scope, as in Lambda.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  warmer = require('../../handlers/warmer');
  stdout = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  warnings = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
});
afterAll(async () => {
  stdout.mockRestore();
  warnings.mockRestore();
  await local.stop();
});

test.each([1, 10, 50, 200])('warms N = %i distinct environments with the default hold', async (n) => {
  const report = await warmer.warmTarget({ functionArn: local.aliasArn('web'), concurrency: n, holdMs: 250 });
  expect(report.errors).toEqual({});
  expect(report.distinct).toBe(n);
  expect(report.coverage).toBe(1);
  expect(local.stats('web').environmentsAlive).toBeGreaterThanOrEqual(n);
});

test('a second run finds the environments warm: no cold starts, still N distinct', async () => {
  const report = await warmer.warmTarget({ functionArn: local.aliasArn('web'), concurrency: 50, holdMs: 250 });
  expect(report).toMatchObject({ distinct: 50, coverage: 1, coldStarts: 0, rounds: 1 });
});

test('later runs hold each ping only for the arrivals still to come after it, and still reach N', async () => {
  // Per ping of the last run, in dispatch order: what it asked (holdForMs, never past holdUntilMs) and
  // what the shim held.
  let holds: Array<{ asked: number; until: number; held: number }> = [];
  warmer.lambda.middlewareStack.add((next) => async (args) => {
    const ping = JSON.parse(Buffer.from((args.input as { Payload: Uint8Array }).Payload).toString('utf-8')).warmWeb;
    const slot = holds.push({ asked: ping.holdForMs, until: ping.holdUntilMs, held: -1 }) - 1;
    const out = await next(args);
    const answer = JSON.parse(Buffer.from((out.output as { Payload: Uint8Array }).Payload).toString('utf-8')).warmWeb;
    holds[slot] = { ...holds[slot], until: holds[slot].until - answer.receivedAtMs, held: answer.heldMs };
    return out;
  }, { step: 'initialize', name: 'testHolds' });
  try {
    for (let i = 0; i < 3; i++) {
      holds = [];
      const report = await warmer.warmTarget({ functionArn: local.aliasArn('web'), concurrency: 50, holdMs: 250 });
      expect(report).toMatchObject({ distinct: 50, coverage: 1, errors: {} });
    }
  } finally {
    warmer.lambda.middlewareStack.remove('testHolds');
  }
  const round = holds.slice(-50);
  // The first ping sent waits longest, the last about the margin; all far below the 250 ms fixed hold.
  expect(round[0].asked).toBeGreaterThan(round[49].asked);
  expect(round[0].asked).toBeLessThan(250);
  for (let k = 1; k < 50; k++) expect(round[k].asked).toBeLessThanOrEqual(round[k - 1].asked);
  // Each shim held its ping at least as long as asked (never past holdUntilMs), to the answers' resolution.
  for (const { asked, until, held } of round) expect(held).toBeGreaterThanOrEqual(Math.max(0, Math.min(asked, until)) - 0.1);
  // And released by holdForMs, not at the backstop (holdUntilMs, at least twice the longest hold after the
  // round started): a shim that held every ping to it would hold at least their sum.
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  expect(sum(round.map((r) => r.held))).toBeLessThan(sum(round.map((r) => Math.max(0, r.until))));
});

test('a run after the service closed idle connections loses no ping, where a kept-alive client fails', async () => {
  const target = { functionArn: local.aliasArn('web'), concurrency: 5, holdMs: 250 };
  const keptAlive = new LambdaClient({ maxAttempts: 1 });
  const invoke = () => keptAlive.send(new InvokeCommand({
    FunctionName: target.functionArn,
    Payload: Buffer.from(JSON.stringify({ warmWeb: { v: 1, round: 'kept-alive', expected: 1, holdUntilMs: 0 } })),
  }));
  await invoke();
  // As when Lambda froze the caller between two calls and the service closed the idle connections
  // meanwhile: the next call starts before this process has read the closes.
  local.closeIdleConnections();
  await expect(invoke()).rejects.toThrow(/socket hang up/);

  await warmer.warmAll([target]);
  local.closeIdleConnections();
  const [report] = await warmer.warmAll([target]);
  expect(report.errors).toEqual({});
  expect(report.distinct).toBe(5);
});

test('a run opens N connections, no more: its pings reuse those its DryRun invokes opened, above Node\'s 256 idle ones too', async () => {
  const target = { functionArn: local.aliasArn('web'), concurrency: 300, holdMs: 250 };
  await warmer.warmAll([target]);
  const before = local.connectionsAccepted;
  const [report] = await warmer.warmAll([target]);
  expect(report).toMatchObject({ distinct: 300, errors: {} });
  expect(local.connectionsAccepted - before).toBe(300);
});

test('at the concurrency limit (real 429s) one round of N pings, no top-ups: the throttles are counted and published', async () => {
  const [report] = await warmer.warmAll([{ functionArn: local.aliasArn('capped'), concurrency: 10, holdMs: 250 }]);
  expect(report).toMatchObject({ rounds: 1, distinct: 4, coverage: 0.4, throttled: 6, errors: { TooManyRequestsException: 6 } });
  // Before: three rounds, 30 pings sent and 18 throttled for 10 wanted.
  expect(local.stats('capped')).toMatchObject({ invocations: 4, throttles: 6 });
  const line = stdout.mock.calls.map((c) => String(c[0])).filter((l) => l.includes('"FunctionName":"capped"')).map((l) => JSON.parse(l)).pop();
  expect(line).toMatchObject({ WarmPingThrottles: 6, WarmCoverage: 0.4 });
  expect(warnings).toHaveBeenCalledWith(expect.stringMatching(/capped: 6 ping\(s\) throttled \(429\), 4\/10 environments warm; no top-up/));
});

test('pings held up by a 10 s INIT are given up at the run\'s deadline: the run returns before the function\'s timeout', async () => {
  const end = Date.now() + warmer.ANSWER_RESERVE_MS + warmer.ROUND_SLACK_MS + 250 + 500;
  const context = { getRemainingTimeInMillis: () => end - Date.now() };
  const [report] = await warmer.handler({ targets: [{ functionArn: local.aliasArn('hanging'), concurrency: 2, holdMs: 250 }] }, context) as WarmerModule.TargetReport[];
  expect(Date.now()).toBeLessThan(end);
  expect(report).toMatchObject({ rounds: 1, distinct: 0, outOfTime: true, errors: { TimeoutError: 2 } });
  expect(local.stats('hanging').environmentsStarted).toBe(2);
});

test('the app never saw a ping', () => {
  expect(fs.readFileSync(requestLog, 'utf-8')).toBe('');
});

test('with the SDK\'s default agent (50 sockets) 200 pings cannot overlap', async () => {
  const defaults = new LambdaClient({ maxAttempts: 1 });
  const holdUntilMs = Date.now() + 250;
  const payload = Buffer.from(JSON.stringify({ warmWeb: { v: 1, round: 'default-agent', expected: 200, holdUntilMs } }));
  const answers = await Promise.all(Array.from({ length: 200 }, () => defaults.send(new InvokeCommand({ FunctionName: local.aliasArn('web'), Payload: payload }))));
  const ids = new Set(answers.map((a) => JSON.parse(Buffer.from(a.Payload!).toString('utf-8')).warmWeb.environmentId));
  expect(ids.size).toBeLessThanOrEqual(60);
});
