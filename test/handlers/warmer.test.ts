import * as http from 'http';
import { AddressInfo } from 'net';
import { InvokeCommand, InvokeCommandInput, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import {
  ANSWER_RESERVE_MS, choosePlan, handler, holdFor, parseTargets, pastRound, ROUND_SLACK_MS, TargetReport, warmTarget,
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

test('counts distinct environments and tops up, each round holding half as long again', async () => {
  // Every ping lands on the same two environments, warm and late: the barrier never held.
  let n = 0;
  onPing(async () => answer(`env-${n++ % 2}`, false, 0));
  const report = await warmTarget({ functionArn: 'arn:aws:lambda:us-east-1:1:function:late:live', concurrency: 5, holdMs: 100 });

  expect(report.distinct).toBe(2);
  expect(report.coverage).toBeCloseTo(0.4);
  expect(report.rounds).toBe(3);
  expect(report.holdMs).toBe(225);
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

test('learns how pings arrive: the next run gives each ping the hold still ahead of it', async () => {
  const arn = 'arn:aws:lambda:us-east-1:1:function:learn:live';
  onPing(arrivingEvery(2, 'env'));
  await warmTarget({ functionArn: arn, concurrency: 10, holdMs: 1000 });
  lambdaMock.reset();
  onPing(arrivingEvery(2, 'env'));
  const before = Date.now();
  await warmTarget({ functionArn: arn, concurrency: 10, holdMs: 1000 });
  const second = pingCalls().map((c) => pingOf(c.args[0].input).warmWeb);
  // One round seen, 2 ms per ping in order: ping k waits for the 9 - k still to come, and no more.
  expect(second.map((p) => p.holdForMs)).toEqual([18, 16, 14, 12, 10, 8, 6, 4, 2, 0]);
  // holdUntilMs is only a backstop, far below the 1000 ms it was given.
  expect(second[0].holdUntilMs - before).toBeGreaterThanOrEqual(18);
  expect(second[0].holdUntilMs - before).toBeLessThan(200);
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

test('a short round teaches too, and its top-up holds half as long again', async () => {
  const arn = 'arn:aws:lambda:us-east-1:1:function:short:live';
  onPing(arrivingEvery(1, 'env'));
  await warmTarget({ functionArn: arn, concurrency: 4, holdMs: 1000 });
  lambdaMock.reset();
  // Now the pings arrive 3 ms apart: the holds learned at 1 ms fall short.
  onPing(shortThenDistinct(3, 4));
  const report = await warmTarget({ functionArn: arn, concurrency: 4, holdMs: 1000 });
  expect(report).toMatchObject({ rounds: 2, distinct: 4, coverage: 1 });
  const holds = () => pingCalls().map((c) => pingOf(c.args[0].input).warmWeb.holdForMs!);
  const second = holds();
  expect(second.slice(0, 4)).toEqual([3, 2, 1, 0]);
  // Remembered at 1 ms (clean) and 3 ms per ping (short; the median rate: 3). Holding for 1.5 ms per ping
  // to come covers the clean round and leaves the short one to a top-up: 9 ms * (2 + 1.5) rounds, less
  // than holding for 3 ms (18 ms * 2). The top-up holds 1.5 times that.
  expect(second.slice(4)).toEqual([6.8, 4.5, 2.3, 0]);
  expect(report.holdMs).toBe(6.8);
  lambdaMock.reset();
  onPing(arrivingEvery(3, 'env-a'));
  await warmTarget({ functionArn: arn, concurrency: 4, holdMs: 1000 });
  // The top-up arrived 3 ms apart and overran its holds (9 ms for 6.8) without being short. But a short
  // round is remembered, so an overrun costs a whole top-up and two clean rounds of three must be covered.
  expect(holds()).toEqual([9, 6, 3, 0]);
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

describe('pastRound, choosePlan and holdFor', () => {
  const start = 1_000_000;
  const inOrder = (n: number, msPerPing: number) => Array.from({ length: n }, (_, k) => ({ k, receivedAtMs: start + k * msPerPing }));

  test('a round: each ping waits for the last arrival; the rate is the spread per dispatch index', () => {
    const arrivals = inOrder(5, 0.5).filter((a) => a.k !== 2);
    const round = pastRound(arrivals, 5);
    expect(round).toEqual({ needMs: [2, 1.5, undefined, 0.5, 0], short: false, overran: false });
    expect(choosePlan([round], 5, 0).msPerPing).toBe(0.5);
  });

  test('rounds alike: the plan holds for the pings still to come, with no margin', () => {
    const round = pastRound(inOrder(10, 1), 10);
    expect(choosePlan([round, round, round], 10, 40)).toEqual({ msPerPing: 1, scale: 1, marginMs: 0, roundMs: 40 });
  });

  test('a round that needed a little more is covered; one far out is left to a top-up', () => {
    const usual = pastRound(inOrder(10, 1), 10);
    const early = (ms: number) => pastRound([{ k: 0, receivedAtMs: start - ms }, ...inOrder(10, 1).slice(1)], 10);
    // Ping 0 waited 9.5 ms: a little more rate and margin for all five rounds costs less than that
    // round's top-up.
    const little = choosePlan([usual, usual, usual, usual, early(0.5)], 10, 40);
    expect(holdFor(little, 0, 10)).toBeGreaterThanOrEqual(9.5);
    expect(holdFor(little, 0, 10)).toBeLessThan(10);
    // Ping 0 waited 19 ms: covering that in every round (5 * 96.75 at the least, 2.15 ms per ping) costs
    // more than leaving that round to a top-up held 1.5 times as long (45 * (5 + 1.5) = 292.5).
    expect(choosePlan([usual, usual, usual, usual, early(10)], 10, 40)).toEqual({ msPerPing: 1, scale: 1, marginMs: 0, roundMs: 40 });
  });

  test('a plan covers two in three of the rounds that were not short', () => {
    const usual = pastRound(inOrder(4, 1), 4);
    // Ping 2 arrives last, 2 ms after ping 3: with no ping to come after it, ping 3 needs a 2 ms margin.
    const swapped = (short: boolean) => pastRound([0, 1, 4, 2].map((ms, k) => ({ k, receivedAtMs: start + ms })), 4, short);
    // Leaving two of five rounds to a top-up would cost least, but two of five is more than a third.
    const covering = choosePlan([usual, usual, usual, swapped(false), swapped(false)], 4, 40);
    expect(holdFor(covering, 3, 4)).toBeGreaterThanOrEqual(2);
    // Rounds that were short only add to the cost: their arrivals were slowed by their own early releases.
    expect(choosePlan([usual, usual, usual, swapped(true), swapped(true)], 4, 40)).toEqual({ msPerPing: 1, scale: 1, marginMs: 0, roundMs: 40 });
  });

  test('overruns that were not short let a plan cover fewer rounds, never fewer than half', () => {
    const plan = { msPerPing: 1, scale: 1, marginMs: 0, roundMs: 40 };
    const usual = pastRound(inOrder(4, 1), 4, false, plan);
    // Ping 0 waited 4 ms for ping 2 and was held 3: the round overran its holds, but no environment answered twice.
    const swapped = pastRound([0, 1, 4, 2].map((ms, k) => ({ k, receivedAtMs: start + ms })), 4, false, plan);
    expect([usual.overran, swapped.overran]).toEqual([false, true]);
    // No round was short: leaving the two overruns to a top-up is charged a third of one each,
    // 6 ms * (5 + 1.5 * 2/3) = 36, less than a 2 ms margin on every ping (14 ms * 5).
    expect(choosePlan([usual, usual, usual, swapped, swapped], 4, 40)).toEqual(plan);
    // Three of five is more than half, however cheap.
    expect(holdFor(choosePlan([usual, usual, swapped, swapped, swapped], 4, 40), 3, 4)).toBeGreaterThanOrEqual(2);
    // One short round in memory: every overrun costs a whole top-up again.
    const short = pastRound(inOrder(4, 1), 4, true, plan);
    expect(holdFor(choosePlan([usual, usual, short, swapped, swapped], 4, 40), 3, 4)).toBeGreaterThanOrEqual(2);
  });

  test('holdFor: the pings still to come times the scaled rate, plus the margin; rounded up to 0.1 ms, capped at 10 s', () => {
    const plan = { msPerPing: 0.2, scale: 1.5, marginMs: 1, roundMs: 100 };
    expect(holdFor(plan, 0, 500)).toBe(150.7);
    expect(holdFor(plan, 499, 500)).toBe(1);
    expect(holdFor({ ...plan, marginMs: 0.01 }, 499, 500)).toBe(0.1);
    expect(holdFor({ ...plan, msPerPing: 100 }, 0, 500)).toBe(10_000);
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
    onPing(silent);
    const context = contextEnding(ANSWER_RESERVE_MS + ROUND_SLACK_MS + 50 + 300);
    const [report] = await handler({ targets: [{ functionArn: ARN, concurrency: 3, holdMs: 50 }] }, context) as TargetReport[];
    expect(Date.now()).toBeLessThan(context.end);
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
