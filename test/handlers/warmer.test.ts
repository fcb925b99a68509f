import * as fs from 'fs';
import * as http from 'http';
import { AddressInfo } from 'net';
import * as path from 'path';
import { InvokeCommand, InvokeCommandInput, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import {
  ANSWER_RESERVE_MS, handler, holdFor, median, parseTargets, ROUND_SLACK_MS, spreadOf, TargetReport, warmTarget,
} from '../../handlers/warmer';

const lambdaMock = mockClient(LambdaClient);
const ARN = 'arn:aws:lambda:us-east-1:123456789012:function:web:live';
const OTHER = 'arn:aws:lambda:us-east-1:123456789012:function:admin:live';

interface Ping { warmWeb: { v: number; round: string; expected: number; holdUntilMs: number; holdForMs?: number } }

function pingOf(input: unknown): Ping {
  return JSON.parse(Buffer.from((input as { Payload: Uint8Array }).Payload).toString('utf-8'));
}

function answer(environmentId: string, coldStart: boolean, heldMs: number, receivedAtMs?: number) {
  const warmWeb = { v: 1, environmentId, coldStart, heldMs, initDurationMs: 5, receivedAtMs };
  return { StatusCode: 200, Payload: Buffer.from(JSON.stringify({ warmWeb })) as never };
}

/** Answers the pings with `fake`; the DryRun invokes that open a connection per ping answer 204, as Lambda's do. */
function onPing(fake: () => Promise<unknown>, functionName?: string) {
  lambdaMock.on(InvokeCommand, functionName ? { FunctionName: functionName } : undefined)
    .callsFake(async (input: InvokeCommandInput) => (input.InvocationType === 'DryRun' ? { StatusCode: 204 } : fake()));
}

/** The pings sent, without the DryRun invokes. */
function pingCalls() {
  return lambdaMock.commandCalls(InvokeCommand).filter((c) => c.args[0].input.InvocationType !== 'DryRun');
}

let stdout: jest.SpyInstance;
let warnings: jest.SpyInstance;
let errorLines: jest.SpyInstance;
beforeEach(() => {
  lambdaMock.reset();
  stdout = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  warnings = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  errorLines = jest.spyOn(console, 'error').mockImplementation(() => undefined);
});
afterEach(() => {
  jest.useRealTimers();
  stdout.mockRestore();
  warnings.mockRestore();
  errorLines.mockRestore();
});

/** A Lambda context whose function times out `ms` from now. */
function contextEnding(ms: number) {
  const end = Date.now() + ms;
  return { end, getRemainingTimeInMillis: () => end - Date.now() };
}

/** Pings that never answer, as a target whose environments hang. */
const silent = () => new Promise<never>(() => undefined);

function throttle(name = 'TooManyRequestsException', httpStatusCode = 429): never {
  throw Object.assign(new Error('Rate Exceeded.'), { name, $metadata: { httpStatusCode } });
}

function metricLines(): Array<Record<string, unknown>> {
  return stdout.mock.calls.map((c) => String(c[0])).filter((l) => l.includes('"_aws"')).map((l) => JSON.parse(l));
}

test('sends N concurrent RequestResponse pings to the alias with one round id and a future deadline', async () => {
  let n = 0;
  onPing(async () => answer(`env-${n++}`, true, 100));
  const before = Date.now();
  const report = await warmTarget({ functionArn: ARN, concurrency: 10, holdMs: 250 });

  const calls = pingCalls();
  expect(calls).toHaveLength(10);
  const pings = calls.map((c) => pingOf(c.args[0].input));
  expect(new Set(pings.map((p) => p.warmWeb.round)).size).toBe(1);
  for (const [i, call] of calls.entries()) {
    expect(call.args[0].input.FunctionName).toBe(ARN);
    expect(call.args[0].input.InvocationType).toBe('RequestResponse');
    expect(pings[i].warmWeb).toMatchObject({ v: 1, expected: 10 });
    expect(pings[i].warmWeb.holdUntilMs).toBeGreaterThanOrEqual(before + 250);
    // Nothing learned yet: every ping holds to the one deadline.
    expect(pings[i].warmWeb.holdForMs).toBeUndefined();
  }
  expect(report).toMatchObject({ expected: 10, distinct: 10, coverage: 1, coldStarts: 10, rounds: 1, heldMsTotal: 1000, errors: {} });
});

test('counts distinct environments and tops up, each round holding twice as long', async () => {
  // Every ping lands on the same two environments, warm and late: the barrier never held.
  let n = 0;
  onPing(async () => answer(`env-${n++ % 2}`, false, 0));
  const report = await warmTarget({ functionArn: 'arn:aws:lambda:us-east-1:1:function:late:live', concurrency: 5, holdMs: 100 });

  expect(report.distinct).toBe(2);
  expect(report.coverage).toBeCloseTo(0.4);
  expect(report.rounds).toBe(3);
  expect(report.holdMs).toBe(400);
  const rounds = new Set(pingCalls().map((c) => pingOf(c.args[0].input).warmWeb.round));
  expect(rounds.size).toBe(3);
  expect(pingCalls()).toHaveLength(15);
});

test('opens a connection per ping with DryRun invokes before a run, not before its top-ups', async () => {
  let n = 0;
  onPing(async () => answer(`env-${n++ % 2}`, false, 0));
  await warmTarget({ functionArn: 'arn:aws:lambda:us-east-1:1:function:connect:live', concurrency: 5, holdMs: 100 });
  const calls = lambdaMock.commandCalls(InvokeCommand).map((c) => c.args[0].input);
  expect(calls.map((input) => input.InvocationType)).toEqual([...Array(5).fill('DryRun'), ...Array(15).fill('RequestResponse')]);
  expect(calls[0]).toEqual({ FunctionName: 'arn:aws:lambda:us-east-1:1:function:connect:live', InvocationType: 'DryRun' });
});

test('stops topping up as soon as N distinct environments have answered', async () => {
  let n = 0;
  onPing(async () => {
    n += 1;
    // First round: 3 of 4 distinct (one warm env answered twice, late). Second round: all 4.
    return n <= 4 ? answer(`env-${Math.min(n, 3)}`, n < 4, n < 4 ? 50 : 0) : answer(`env-${n - 4}`, false, 50);
  });
  const report = await warmTarget({ functionArn: 'arn:aws:lambda:us-east-1:1:function:topup:live', concurrency: 4, holdMs: 100 });
  expect(report.rounds).toBe(2);
  expect(report.distinct).toBe(4);
  expect(report.coverage).toBe(1);
});

test('reports errors per cause and keeps warming the other targets', async () => {
  onPing(async () => {
    const err = new Error('Rate exceeded');
    err.name = 'TooManyRequestsException';
    throw err;
  }, OTHER);
  let n = 0;
  onPing(async () => answer(`env-${n++}`, false, 30), ARN);
  const targets = [{ functionArn: ARN, concurrency: 3, holdMs: 50 }, { functionArn: OTHER, concurrency: 2, holdMs: 50 }];
  const reports = await handler({ targets }) as TargetReport[];

  const [web, other] = reports;
  expect(web).toMatchObject({ functionArn: ARN, distinct: 3, errors: {} });
  expect(other).toMatchObject({ functionArn: OTHER, distinct: 0, errors: { TooManyRequestsException: 2 }, rounds: 1 });
});

test('function errors and answers from something that is not the shim are errors, not environments', async () => {
  let n = 0;
  onPing(async () => {
    n += 1;
    if (n === 1) return { StatusCode: 200, FunctionError: 'Unhandled', Payload: Buffer.from('{}') as never };
    if (n === 2) return { StatusCode: 200, Payload: Buffer.from('{"statusCode":200}') as never };
    return answer(`env-${n}`, true, 10);
  });
  const report = await warmTarget({ functionArn: 'arn:aws:lambda:us-east-1:1:function:mixed:live', concurrency: 3, holdMs: 20 });
  expect(report.errors).toMatchObject({ FunctionError: 1, NotWarmWebShim: 1 });
});

test('emits one EMF line per target with coverage, distinct, cold starts and round duration', async () => {
  let n = 0;
  onPing(async () => answer(`env-${n++}`, n === 1, 20));
  await warmTarget({ functionArn: ARN, concurrency: 2, holdMs: 50 });
  const lines = metricLines();
  expect(lines).toHaveLength(1);
  const [line] = lines as Array<Record<string, any>>;
  expect(line._aws.CloudWatchMetrics[0]).toMatchObject({ Namespace: 'WarmWeb', Dimensions: [['FunctionName']] });
  expect(line._aws.CloudWatchMetrics[0].Metrics.map((m: { Name: string }) => m.Name)).toEqual(
    ['DistinctEnvironmentsWarmed', 'WarmCoverage', 'ColdStartsDuringWarm', 'WarmRoundDurationMs', 'WarmPingErrors', 'WarmPingThrottles']);
  expect(line).toMatchObject({
    FunctionName: 'web', DistinctEnvironmentsWarmed: 2, WarmCoverage: 1, ColdStartsDuringWarm: 1, WarmPingErrors: 0, WarmPingThrottles: 0, OutOfTime: false,
  });
  expect(line.WarmRoundDurationMs).toBeGreaterThanOrEqual(0);
});

/** Answers as warm environments that received ping k `msPerPing * k` ms into the round. */
function arrivingEvery(msPerPing: number, envPrefix: string, start = () => Date.now()) {
  let k = 0;
  let t0 = 0;
  return async () => {
    if (k === 0) t0 = start();
    const i = k++;
    return answer(`${envPrefix}-${i}`, false, 10, t0 + i * msPerPing);
  };
}

test('learns how pings arrive: the next run gives each ping 1.25 times its share of the spread still ahead, plus a tenth', async () => {
  const arn = 'arn:aws:lambda:us-east-1:1:function:learn:live';
  onPing(arrivingEvery(2, 'env'));
  const first = await warmTarget({ functionArn: arn, concurrency: 10, holdMs: 1000 });
  lambdaMock.reset();
  onPing(arrivingEvery(2, 'env'));
  const before = Date.now();
  await warmTarget({ functionArn: arn, concurrency: 10, holdMs: 1000 });
  const after = Date.now();
  const second = pingCalls().map((c) => pingOf(c.args[0].input).warmWeb);
  // One round seen, 2 ms per ping in order, a spread of 18 ms: ping k holds 1.25 * 18 * (9 - k) / 9 + 1.8.
  expect(second.map((p) => p.holdForMs)).toEqual([24.3, 21.8, 19.3, 16.8, 14.3, 11.8, 9.3, 6.8, 4.3, 1.8]);
  // holdUntilMs is only a backstop: twice the longest hold or the last round, not the 1000 ms it was given.
  expect(second[0].holdUntilMs).toBeGreaterThanOrEqual(before + 2 * 24.3);
  expect(second[0].holdUntilMs).toBeLessThanOrEqual(after + 2 * Math.max(first.durationMs, 24.3));
});

const receivedAt = (out: { Payload: Uint8Array }): number => JSON.parse(Buffer.from(out.Payload).toString('utf-8')).warmWeb.receivedAtMs;

/** A round arriving every `msPerPing` whose last ping lands on the first one's environment, then a clean top-up. */
function shortThenDistinct(msPerPing: number, n: number) {
  const first = arrivingEvery(msPerPing, 'env-a');
  const topUp = arrivingEvery(msPerPing, 'env-a');
  let i = 0;
  return async () => {
    const call = ++i;
    if (call > n) return topUp();
    const out = await first();
    return call === n ? answer('env-a-0', false, 5, receivedAt(out)) : out;
  };
}

test('a short round teaches too, and its top-up holds twice as long', async () => {
  const arn = 'arn:aws:lambda:us-east-1:1:function:short:live';
  onPing(arrivingEvery(1, 'env'));
  await warmTarget({ functionArn: arn, concurrency: 4, holdMs: 1000 });
  lambdaMock.reset();
  // Now the pings arrive 3 ms apart: the holds learned from a 3 ms spread fall short.
  onPing(shortThenDistinct(3, 4));
  const report = await warmTarget({ functionArn: arn, concurrency: 4, holdMs: 1000 });
  expect(report).toMatchObject({ rounds: 2, distinct: 4, coverage: 1 });
  const holds = () => pingCalls().map((c) => pingOf(c.args[0].input).warmWeb.holdForMs!);
  const second = holds();
  // Spread 3 ms: 1.25 * 3 * (3 - k) / 3 + 0.3, rounded up to 0.1 ms.
  expect(second.slice(0, 4)).toEqual([4.1, 2.8, 1.6, 0.3]);
  // Remembered: 3 and 9 ms (the short round), median 9 (the upper of two), doubled for the top-up.
  expect(second.slice(4)).toEqual([24.3, 16.8, 9.3, 1.8]);
  expect(report.holdMs).toBe(24.3);
  lambdaMock.reset();
  onPing(arrivingEvery(3, 'env-a'));
  await warmTarget({ functionArn: arn, concurrency: 4, holdMs: 1000 });
  // A new run starts from the median again (3, 9, 9: 9), not doubled.
  expect(holds()).toEqual([12.2, 8.4, 4.7, 0.9]);
});

test('one slow round of five does not set the holds: the median spread does', async () => {
  const arn = 'arn:aws:lambda:us-east-1:1:function:median:live';
  for (const msPerPing of [1, 1, 20, 1, 1]) {
    lambdaMock.reset();
    onPing(arrivingEvery(msPerPing, 'env'));
    await warmTarget({ functionArn: arn, concurrency: 3, holdMs: 1000 });
  }
  lambdaMock.reset();
  onPing(arrivingEvery(1, 'env'));
  await warmTarget({ functionArn: arn, concurrency: 3, holdMs: 1000 });
  // Spreads 2, 2, 40, 2, 2: the holds of a 2 ms spread (1.25 * 2 * (2 - k) / 2 + 0.2, rounded up).
  expect(pingCalls().map((c) => pingOf(c.args[0].input).warmWeb.holdForMs)).toEqual([2.7, 1.5, 0.2]);
});

test('the environments reached in any round of the run count', async () => {
  const arn = 'arn:aws:lambda:us-east-1:1:function:union:live';
  let call = 0;
  // Round one reaches a, b and c (c twice); round two a, b and d (d twice): four of four.
  const envs = ['a', 'b', 'c', 'c', 'a', 'b', 'd', 'd'];
  onPing(async () => answer(`env-${envs[call++]}`, false, 5));
  const report = await warmTarget({ functionArn: arn, concurrency: 4, holdMs: 100 });
  expect(report).toMatchObject({ rounds: 2, distinct: 4, coverage: 1 });
  expect(pingCalls()).toHaveLength(8);
});

test('plans are kept per concurrency: what was learned at N = 1 is not used at N = 5', async () => {
  const arn = 'arn:aws:lambda:us-east-1:1:function:grow:live';
  onPing(arrivingEvery(0, 'one'));
  await warmTarget({ functionArn: arn, concurrency: 1, holdMs: 250 });
  await warmTarget({ functionArn: arn, concurrency: 1, holdMs: 250 });
  // A single ping has nothing to wait for.
  expect(pingOf(pingCalls()[1].args[0].input).warmWeb.holdForMs).toBe(0);
  lambdaMock.reset();
  onPing(arrivingEvery(3, 'five'));
  await warmTarget({ functionArn: arn, concurrency: 5, holdMs: 250 });
  const pings = pingCalls().map((c) => pingOf(c.args[0].input).warmWeb);
  expect(pings.map((p) => p.holdForMs)).toEqual([undefined, undefined, undefined, undefined, undefined]);
});

test('cold answers teach nothing: their arrival is the end of INIT, not of the dispatch', async () => {
  const arn = 'arn:aws:lambda:us-east-1:1:function:cold:live';
  let n = 0;
  onPing(async () => answer(`env-${n++}`, true, 10, Date.now() + 800 * n));
  await warmTarget({ functionArn: arn, concurrency: 3, holdMs: 250 });
  await warmTarget({ functionArn: arn, concurrency: 3, holdMs: 250 });
  const pings = pingCalls().map((c) => pingOf(c.args[0].input).warmWeb);
  expect(pings.every((p) => p.holdForMs === undefined)).toBe(true);
});

test('a round that started an environment teaches nothing, not even from its warm answers', async () => {
  const arn = 'arn:aws:lambda:us-east-1:1:function:mixed:live';
  const warm = arrivingEvery(2, 'env');
  let n = 0;
  onPing(async () => (++n === 3 ? answer('env-new', true, 10, Date.now()) : warm()));
  await warmTarget({ functionArn: arn, concurrency: 3, holdMs: 250 });
  await warmTarget({ functionArn: arn, concurrency: 3, holdMs: 250 });
  const pings = pingCalls().map((c) => pingOf(c.args[0].input).warmWeb);
  expect(pings.map((p) => p.holdForMs)).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
});

describe('the hold rule', () => {
  test('holds fall with the dispatch index: the first ping sent waits longest, the last a tenth of the spread', () => {
    const holds = Array.from({ length: 500 }, (_, k) => holdFor(200, k, 500));
    for (let k = 1; k < 500; k++) expect(holds[k]).toBeLessThanOrEqual(holds[k - 1]);
    expect([holds[0], holds[499]]).toEqual([270, 20]);
  });

  test('every ping holds past its arrivals still to come while the dispatch is up to 1.25 times as slow', () => {
    // Ping k arrives at k / (n - 1) of the spread and waits for the last.
    const uncovered = (n: number, learnedMs: number, spreadMs: number) =>
      Array.from({ length: n }, (_, k) => k).filter((k) => holdFor(learnedMs, k, n) < spreadMs * (n - 1 - k) / (n - 1));
    for (const n of [2, 10, 50, 200, 500]) {
      for (const slower of [1, 1.1, 1.25]) {
        expect({ n, slower, uncovered: uncovered(n, 2 * n, 2 * n * slower) }).toEqual({ n, slower, uncovered: [] });
      }
      // Half as slow again, the first pings sent are released before the last arrives: a top-up's doubled holds take over.
      expect(uncovered(n, 2 * n, 2 * n * 1.5)[0]).toBe(0);
    }
  });

  test('a ping that arrives out of order, up to a tenth of the spread after the last, is still covered', () => {
    // The last ping sent holds MARGIN: 0.1 of the spread.
    expect(holdFor(50, 9, 10)).toBe(5);
  });

  test('a single ping has nothing to wait for; holds are rounded up to 0.1 ms and capped at 10 s', () => {
    expect(holdFor(0, 0, 1)).toBe(0);
    expect(holdFor(1, 0, 1)).toBe(0.1);
    expect(holdFor(0.2, 0, 2)).toBe(0.3); // 0.27
    // 6 * 1.35 is 8.100000000000001 in floating point: not rounded up a step.
    expect(holdFor(6, 0, 2)).toBe(8.1);
    expect(holdFor(6.01, 0, 2)).toBe(8.2);
    expect(holdFor(100_000, 0, 500)).toBe(10_000);
  });

  test('the spread is the last arrival minus the first; the median is the middle one (the upper of two)', () => {
    expect(spreadOf([1_000_003.5, 1_000_000, 1_000_001.2])).toBe(3.5);
    expect(median([40, 2, 2, 3, 2])).toBe(2);
    expect(median([3, 9])).toBe(9);
  });
});

describe('the warm vectors (test/vectors/warm/): the warmer reads what both shims answer', () => {
  const dir = path.join(__dirname, '..', 'vectors', 'warm');
  const vectors = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort()
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf-8')));
  const sample: Record<string, (i: number, runtime: string) => unknown> = {
    environmentId: (i, runtime) => `${runtime}-env-${i}`, coldStart: () => false, initDurationMs: () => 812.4, runtime: (_i, runtime) => runtime,
  };
  /** Answer i of a valid vector as `runtime`'s shim gives it: the vector's fields, the typed ones filled in, arriving 0.1 ms apart. */
  const answerOf = (vector: any, i: number, runtime: string) => {
    const warmWeb: Record<string, unknown> = { ...vector.expect.answer, receivedAtMs: vector.expect.answer.receivedAtMs + i / 10 };
    for (const field of vector.expect.fields) if (!(field in warmWeb)) warmWeb[field] = sample[field](i, runtime);
    expect(typeof warmWeb[Object.keys(vector.expect.types)[0]]).toBe(vector.expect.types[Object.keys(vector.expect.types)[0]]);
    return { StatusCode: 200, Payload: Buffer.from(JSON.stringify({ warmWeb })) as never };
  };
  const valid = vectors.filter((v) => v.expect.error === undefined).flatMap((v) => [[v.name, 'node', v], [v.name, 'python', v]]);
  const malformed = vectors.filter((v) => v.expect.error !== undefined).map((v) => [v.name, v]);

  test.each(valid)('%s (%s): counted, held time summed, arrivals learned', async (name, runtime, vector) => {
    const arn = `arn:aws:lambda:us-east-1:1:function:vector-${name}-${runtime}:live`;
    let i = 0;
    onPing(async () => answerOf(vector, i++, runtime as string));
    const report = await warmTarget({ functionArn: arn, concurrency: 4, holdMs: 50 });
    expect(report).toMatchObject({ distinct: 4, coverage: 1, coldStarts: 0, errors: {}, heldMsTotal: 4 * (vector as any).expect.answer.heldMs });
    lambdaMock.reset();
    i = 0;
    onPing(async () => answerOf(vector, i++, runtime as string));
    await warmTarget({ functionArn: arn, concurrency: 4, holdMs: 50 });
    // Arrivals 0.1 ms apart: a spread of 0.3 ms learned from receivedAtMs.
    expect(pingCalls().map((c) => pingOf(c.args[0].input).warmWeb.holdForMs)).toEqual([0, 1, 2, 3].map((k) => holdFor(0.3, k, 4)));
  });

  test.each(malformed)('%s: an error answer is a MalformedPing, not an environment', async (name, vector) => {
    const warmWeb = { v: 1, error: (vector as any).expect.error };
    onPing(async () => ({ StatusCode: 200, Payload: Buffer.from(JSON.stringify({ warmWeb })) as never }));
    const report = await warmTarget({ functionArn: `arn:aws:lambda:us-east-1:1:function:vector-${name}:live`, concurrency: 2, holdMs: 20 });
    expect(report).toMatchObject({ distinct: 0, rounds: 1, errors: { MalformedPing: 2 } });
  });
});

test('parseTargets accepts CloudFormation strings and rejects malformed targets, naming the field and the value', () => {
  expect(parseTargets([{ functionArn: ARN, concurrency: '3', holdMs: '250' }])).toEqual([{ functionArn: ARN, concurrency: 3, holdMs: 250 }]);
  expect(() => parseTargets([])).toThrow(/expected a non-empty 'targets' list/);
  expect(() => parseTargets(undefined)).toThrow(/expected a non-empty 'targets' list, got undefined/);
  expect(() => parseTargets([{ functionArn: 'web', concurrency: 1, holdMs: 1 }])).toThrow(/targets\[0\]\.functionArn must be an alias ARN, got "web"/);
  expect(() => parseTargets([{ functionArn: ARN, concurrency: 0, holdMs: 1 }]))
    .toThrow(/targets\[0\]\.concurrency must be an integer from 1 to 1000, got 0/);
  expect(() => parseTargets([{ functionArn: ARN, concurrency: 1, holdMs: 'soon' }])).toThrow(/targets\[0\]\.holdMs must be a number above 0, got "soon"/);
});

describe('concurrency at run time (a token reaches the warmer as a string, unchecked at synth)', () => {
  test.each([[1001], ['1500'], ['2.5'], ['ten'], [''], [null]])('%j is rejected with the field and the value', (concurrency) => {
    expect(() => parseTargets([{ functionArn: ARN, concurrency: 5, holdMs: 250 }, { functionArn: ARN, concurrency, holdMs: 250 }]))
      .toThrow(`warmer: targets[1].concurrency must be an integer from 1 to 1000, got ${JSON.stringify(concurrency)}`);
  });

  test('numeric strings from 1 to 1000 are taken; a list (the pre-warm of token schedules) warms at the largest', () => {
    expect(parseTargets([{ functionArn: ARN, concurrency: '1000', holdMs: 250 }])[0].concurrency).toBe(1000);
    expect(parseTargets([{ functionArn: ARN, concurrency: ['3', 7, '2'], holdMs: '250' }])[0].concurrency).toBe(7);
    expect(() => parseTargets([{ functionArn: ARN, concurrency: ['3', '1001'], holdMs: 250 }]))
      .toThrow('warmer: targets[0].concurrency[1] must be an integer from 1 to 1000, got "1001"');
  });

  test('a scheduled run with a bad target fails before any ping', async () => {
    onPing(async () => answer('env', false, 0));
    await expect(handler({ targets: [{ functionArn: ARN, concurrency: '5000', holdMs: 250 }] }))
      .rejects.toThrow('targets[0].concurrency must be an integer from 1 to 1000, got "5000"');
    expect(lambdaMock.commandCalls(InvokeCommand)).toHaveLength(0);
  });
});

describe('the run\'s deadline', () => {
  test('pings that stay silent are given up at the deadline: the run reports and returns before the function\'s timeout', async () => {
    // On fake timers: the run is held to the time the context gives it, whatever the machine's load.
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
    onPing(silent);
    const context = contextEnding(ANSWER_RESERVE_MS + ROUND_SLACK_MS + 50 + 300);
    let returnedAt = Infinity;
    const run = handler({ targets: [{ functionArn: ARN, concurrency: 3, holdMs: 50 }] }, context).then((reports) => {
      returnedAt = Date.now();
      return reports as TargetReport[];
    });
    await jest.advanceTimersByTimeAsync(context.end - Date.now());
    const [report] = await run;
    // Given up exactly at the run's deadline, the reserve to answer left before the timeout.
    expect(returnedAt).toBe(context.end - ANSWER_RESERVE_MS);
    // One round, cut off; no top-up started without the time to finish it.
    expect(pingCalls()).toHaveLength(3);
    expect(report).toMatchObject({ rounds: 1, distinct: 0, coverage: 0, outOfTime: true, errors: { TimeoutError: 3 } });
    expect(metricLines()).toEqual([expect.objectContaining({ WarmCoverage: 0, WarmPingErrors: 3, OutOfTime: true })]);
    expect(warnings).toHaveBeenCalledWith(expect.stringMatching(/web: out of time after 1 round\(s\), 0\/3 environments warm.*3 ping\(s\) given up/));
  }, 20_000);

  test('a round that cannot finish with a margin before the deadline is not started, not even its DryRun invokes', async () => {
    onPing(async () => answer('env', false, 0));
    const context = contextEnding(ANSWER_RESERVE_MS + ROUND_SLACK_MS + 250 - 100);
    const [report] = await handler({ targets: [{ functionArn: ARN, concurrency: 3, holdMs: 250 }] }, context) as TargetReport[];
    expect(lambdaMock.commandCalls(InvokeCommand)).toHaveLength(0);
    expect(report).toMatchObject({ rounds: 0, distinct: 0, coverage: 0, outOfTime: true, errors: {} });
    expect(metricLines()).toEqual([expect.objectContaining({ WarmCoverage: 0, OutOfTime: true, Rounds: 0 })]);
  });

  test('a top-up starts only if its longer hold still fits', async () => {
    // Every ping lands on one of two environments; the first round's holds (1 s) fit, the top-up's 1.5 s do not.
    let n = 0;
    onPing(async () => answer(`env-${n++ % 2}`, false, 0));
    const deadlineMs = Date.now() + ROUND_SLACK_MS + 1000 + 400;
    const report = await warmTarget({ functionArn: 'arn:aws:lambda:us-east-1:1:function:nofit:live', concurrency: 4, holdMs: 1000 }, deadlineMs);
    expect(pingCalls()).toHaveLength(4);
    expect(report).toMatchObject({ rounds: 1, distinct: 2, outOfTime: true, holdMs: 1000 });
  });
});

describe('throttling', () => {
  test('at the concurrency limit the warmer does not top up: N pings sent, the throttled ones counted and reported', async () => {
    let n = 0;
    // 4 environments to be had, 10 wanted.
    onPing(async () => (n++ < 4 ? answer(`env-${n}`, true, 10) : throttle()));
    const report = await warmTarget({ functionArn: 'arn:aws:lambda:us-east-1:1:function:limit:live', concurrency: 10, holdMs: 50 });
    expect(pingCalls()).toHaveLength(10);
    expect(report).toMatchObject({ rounds: 1, distinct: 4, coverage: 0.4, throttled: 6, errors: { TooManyRequestsException: 6 } });
    expect(metricLines()).toEqual([expect.objectContaining({ FunctionName: 'limit', WarmPingThrottles: 6, WarmPingErrors: 6, WarmCoverage: 0.4 })]);
    expect(warnings).toHaveBeenCalledWith(expect.stringMatching(/limit: 6 ping\(s\) throttled \(429\), 4\/10 environments warm; no top-up/));
  });

  test('any 429 is a throttle, whatever its error name', async () => {
    let n = 0;
    onPing(async () => (n++ < 1 ? answer('env-a', false, 10) : throttle('ThrottlingException')));
    const report = await warmTarget({ functionArn: 'arn:aws:lambda:us-east-1:1:function:named:live', concurrency: 3, holdMs: 50 });
    expect(report).toMatchObject({ rounds: 1, throttled: 2, errors: { ThrottlingException: 2 } });
  });

  test('other failures still get a top-up of N pings', async () => {
    let n = 0;
    onPing(async () => (++n === 2 ? { StatusCode: 200, FunctionError: 'Unhandled', Payload: Buffer.from('{}') as never } : answer(`env-${n}`, false, 10)));
    const report = await warmTarget({ functionArn: 'arn:aws:lambda:us-east-1:1:function:flaky:live', concurrency: 3, holdMs: 50 });
    expect(report).toMatchObject({ rounds: 2, distinct: 5, throttled: 0 });
    expect(pingCalls()).toHaveLength(6);
  });
});

describe('pre-warm custom resource', () => {
  let server: http.Server;
  let responses: Array<Record<string, any>>;
  let url: string;

  beforeEach(async () => {
    responses = [];
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        responses.push({ method: req.method, ...JSON.parse(body) });
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/response`;
  });
  afterEach(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const event = (RequestType: string, Targets: unknown) => ({
    RequestType,
    ResponseURL: url,
    StackId: 'stack',
    RequestId: 'req',
    LogicalResourceId: 'Prewarm',
    ResourceProperties: { Targets, Version: '7' },
  });

  test('Create warms the new version and answers SUCCESS with the coverage', async () => {
    let n = 0;
    onPing(async () => answer(`env-${n++}`, true, 10));
    await handler(event('Create', [{ functionArn: ARN, concurrency: '2', holdMs: '20' }]));
    expect(pingCalls()).toHaveLength(2);
    expect(responses).toHaveLength(1);
    expect(responses[0]).toMatchObject({ method: 'PUT', Status: 'SUCCESS', RequestId: 'req', LogicalResourceId: 'Prewarm', Data: { Summary: 'web: 2/2' } });
  });

  test('Delete answers SUCCESS without pinging', async () => {
    await handler(event('Delete', [{ functionArn: ARN, concurrency: '2', holdMs: '20' }]));
    // No DryRun either.
    expect(lambdaMock.commandCalls(InvokeCommand)).toHaveLength(0);
    expect(responses[0]).toMatchObject({ Status: 'SUCCESS' });
  });

  test('a broken warm-up never fails the deploy: SUCCESS, the failure in the reason and data, and a log line', async () => {
    await handler(event('Update', 'not a list'));
    expect(responses[0]).toMatchObject({
      Status: 'SUCCESS',
      Reason: expect.stringMatching(/pre-warm skipped: warmer: expected a non-empty 'targets' list/),
      Data: { Error: expect.stringMatching(/expected a non-empty 'targets' list, got "not a list"/) },
    });
    expect(errorLines).toHaveBeenCalledWith(expect.stringMatching(/warm-web warmer: pre-warm skipped, the deploy goes on: warmer: expected/));
  });

  test('a pre-warm whose pings stay silent answers CloudFormation SUCCESS before the function\'s timeout', async () => {
    onPing(silent);
    const context = contextEnding(ANSWER_RESERVE_MS + ROUND_SLACK_MS + 20 + 300);
    await handler(event('Create', [{ functionArn: ARN, concurrency: '2', holdMs: '20' }]), context);
    expect(Date.now()).toBeLessThan(context.end);
    expect(responses).toHaveLength(1);
    expect(responses[0]).toMatchObject({ Status: 'SUCCESS', Reason: 'pre-warmed web: 0/2 (out of time)', Data: { Summary: 'web: 0/2 (out of time)' } });
  }, 20_000);

  test('a throttled pre-warm says so in its reason', async () => {
    let n = 0;
    onPing(async () => (n++ < 1 ? answer('env-a', true, 10) : throttle()));
    await handler(event('Create', [{ functionArn: ARN, concurrency: '3', holdMs: '20' }]));
    expect(responses[0]).toMatchObject({ Status: 'SUCCESS', Reason: 'pre-warmed web: 1/3 (2 throttled)' });
  });
});
