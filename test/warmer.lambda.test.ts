import * as http from 'http';
import { AddressInfo } from 'net';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { handler, holdFor, learnPlan, parseTargets, TargetReport, warmTarget } from '../lib/warmer.lambda';

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

let stdout: jest.SpyInstance;
beforeEach(() => {
  lambdaMock.reset();
  stdout = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
});
afterEach(() => stdout.mockRestore());

function metricLines(): Array<Record<string, unknown>> {
  return stdout.mock.calls.map((c) => String(c[0])).filter((l) => l.includes('"_aws"')).map((l) => JSON.parse(l));
}

test('sends N concurrent RequestResponse pings to the alias with one round id and a future deadline', async () => {
  let n = 0;
  lambdaMock.on(InvokeCommand).callsFake(async () => answer(`env-${n++}`, true, 100));
  const before = Date.now();
  const report = await warmTarget({ functionArn: ARN, concurrency: 10, holdMs: 250 });

  const calls = lambdaMock.commandCalls(InvokeCommand);
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

test('counts distinct environments, tops up with a wider hold, and reports the best round', async () => {
  // Every ping lands on the same two environments, warm and late: the barrier never held.
  let n = 0;
  lambdaMock.on(InvokeCommand).callsFake(async () => answer(`env-${n++ % 2}`, false, 0));
  const report = await warmTarget({ functionArn: 'arn:aws:lambda:us-east-1:1:function:late:live', concurrency: 5, holdMs: 100 });

  expect(report.distinct).toBe(2);
  expect(report.coverage).toBeCloseTo(0.4);
  expect(report.rounds).toBe(3);
  expect(report.holdMs).toBe(400);
  const rounds = new Set(lambdaMock.commandCalls(InvokeCommand).map((c) => pingOf(c.args[0].input).warmWeb.round));
  expect(rounds.size).toBe(3);
  expect(lambdaMock.commandCalls(InvokeCommand)).toHaveLength(15);
});

test('stops topping up as soon as a round reaches N distinct', async () => {
  let n = 0;
  lambdaMock.on(InvokeCommand).callsFake(async () => {
    n += 1;
    // First round: 3 of 4 distinct (one warm env answered twice, late). Second round: all 4.
    return n <= 4 ? answer(`env-${Math.min(n, 3)}`, n < 4, n < 4 ? 50 : 0) : answer(`env-${n}`, true, 50);
  });
  const report = await warmTarget({ functionArn: 'arn:aws:lambda:us-east-1:1:function:topup:live', concurrency: 4, holdMs: 100 });
  expect(report.rounds).toBe(2);
  expect(report.distinct).toBe(4);
  expect(report.coverage).toBe(1);
});

test('reports errors per cause and keeps warming the other targets', async () => {
  lambdaMock.on(InvokeCommand, { FunctionName: OTHER }).callsFake(async () => {
    const err = new Error('Rate exceeded');
    err.name = 'TooManyRequestsException';
    throw err;
  });
  let n = 0;
  lambdaMock.on(InvokeCommand, { FunctionName: ARN }).callsFake(async () => answer(`env-${n++}`, false, 30));
  const targets = [{ functionArn: ARN, concurrency: 3, holdMs: 50 }, { functionArn: OTHER, concurrency: 2, holdMs: 50 }];
  const reports = await handler({ targets }) as TargetReport[];

  const [web, other] = reports;
  expect(web).toMatchObject({ functionArn: ARN, distinct: 3, errors: {} });
  expect(other).toMatchObject({ functionArn: OTHER, distinct: 0, errors: { TooManyRequestsException: 2 }, rounds: 1 });
});

test('function errors and answers from something that is not the shim are errors, not environments', async () => {
  let n = 0;
  lambdaMock.on(InvokeCommand).callsFake(async () => {
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
  lambdaMock.on(InvokeCommand).callsFake(async () => answer(`env-${n++}`, n === 1, 20));
  await warmTarget({ functionArn: ARN, concurrency: 2, holdMs: 50 });
  const lines = metricLines();
  expect(lines).toHaveLength(1);
  const [line] = lines as Array<Record<string, any>>;
  expect(line._aws.CloudWatchMetrics[0]).toMatchObject({ Namespace: 'WarmWeb', Dimensions: [['FunctionName']] });
  expect(line._aws.CloudWatchMetrics[0].Metrics.map((m: { Name: string }) => m.Name)).toEqual(
    ['DistinctEnvironmentsWarmed', 'WarmCoverage', 'ColdStartsDuringWarm', 'WarmRoundDurationMs', 'WarmPingErrors']);
  expect(line).toMatchObject({ FunctionName: 'web', DistinctEnvironmentsWarmed: 2, WarmCoverage: 1, ColdStartsDuringWarm: 1, WarmPingErrors: 0 });
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
  lambdaMock.on(InvokeCommand).callsFake(arrivingEvery(2, 'env'));
  await warmTarget({ functionArn: arn, concurrency: 10, holdMs: 1000 });
  lambdaMock.reset();
  lambdaMock.on(InvokeCommand).callsFake(arrivingEvery(2, 'env'));
  const before = Date.now();
  await warmTarget({ functionArn: arn, concurrency: 10, holdMs: 1000 });
  const second = lambdaMock.commandCalls(InvokeCommand).map((c) => pingOf(c.args[0].input).warmWeb);
  // 2 ms per ping: ping k waits (9 - k) * 2 ms, plus a fifth of the 18 ms spread and the 0.5 ms margin.
  expect(second.map((p) => p.holdForMs)).toEqual([22.1, 20.1, 18.1, 16.1, 14.1, 12.1, 10.1, 8.1, 6.1, 4.1]);
  // holdUntilMs is only a backstop, far below the 1000 ms it was given.
  expect(second[0].holdUntilMs - before).toBeGreaterThanOrEqual(22);
  expect(second[0].holdUntilMs - before).toBeLessThan(200);
});

const receivedAt = (out: { Payload: Uint8Array }): number => JSON.parse(Buffer.from(out.Payload).toString('utf-8')).warmWeb.receivedAtMs;

test('an environment that answers twice makes the top-up round hold half as long again', async () => {
  const arn = 'arn:aws:lambda:us-east-1:1:function:widen:live';
  lambdaMock.on(InvokeCommand).callsFake(arrivingEvery(2, 'env'));
  await warmTarget({ functionArn: arn, concurrency: 4, holdMs: 1000 });
  lambdaMock.reset();
  // Round one: arrivals as before, but the last ping lands on the environment of the first.
  // Round two: all distinct.
  const first = arrivingEvery(2, 'env-a');
  let n = 0;
  lambdaMock.on(InvokeCommand).callsFake(async () => {
    const i = ++n;
    const out = await first();
    return i === 4 ? answer('env-a-0', false, 5, receivedAt(out)) : i > 4 ? answer(`env-b${i}`, false, 5) : out;
  });
  const report = await warmTarget({ functionArn: arn, concurrency: 4, holdMs: 1000 });
  expect(report).toMatchObject({ rounds: 2, distinct: 4, coverage: 1 });
  const holds = lambdaMock.commandCalls(InvokeCommand).map((c) => pingOf(c.args[0].input).warmWeb.holdForMs!);
  expect(holds.slice(4, 8)).toEqual(holds.slice(0, 4).map((h) => expect.closeTo(1.5 * h, 0)));
});

test('plans are kept per concurrency: what was learned at N = 1 is not used at N = 5', async () => {
  const arn = 'arn:aws:lambda:us-east-1:1:function:grow:live';
  lambdaMock.on(InvokeCommand).callsFake(arrivingEvery(0, 'one'));
  await warmTarget({ functionArn: arn, concurrency: 1, holdMs: 250 });
  await warmTarget({ functionArn: arn, concurrency: 1, holdMs: 250 });
  expect(pingOf(lambdaMock.commandCalls(InvokeCommand)[1].args[0].input).warmWeb.holdForMs).toBe(0.5);
  lambdaMock.reset();
  lambdaMock.on(InvokeCommand).callsFake(arrivingEvery(3, 'five'));
  await warmTarget({ functionArn: arn, concurrency: 5, holdMs: 250 });
  const pings = lambdaMock.commandCalls(InvokeCommand).map((c) => pingOf(c.args[0].input).warmWeb);
  expect(pings.map((p) => p.holdForMs)).toEqual([undefined, undefined, undefined, undefined, undefined]);
});

test('cold answers teach nothing: their arrival is the end of INIT, not of the dispatch', async () => {
  const arn = 'arn:aws:lambda:us-east-1:1:function:cold:live';
  let n = 0;
  lambdaMock.on(InvokeCommand).callsFake(async () => answer(`env-${n++}`, true, 10, Date.now() + 800 * n));
  await warmTarget({ functionArn: arn, concurrency: 3, holdMs: 250 });
  await warmTarget({ functionArn: arn, concurrency: 3, holdMs: 250 });
  const pings = lambdaMock.commandCalls(InvokeCommand).map((c) => pingOf(c.args[0].input).warmWeb);
  expect(pings.every((p) => p.holdForMs === undefined)).toBe(true);
});

describe('learnPlan and holdFor', () => {
  const start = 1_000_000;
  const inOrder = (n: number, msPerPing: number, from = 30) =>
    Array.from({ length: n }, (_, k) => ({ k, receivedAtMs: start + from + k * msPerPing }));

  test('the rate is the arrival spread per dispatch index', () => {
    expect(learnPlan(undefined, inOrder(101, 0.25), 101, 80)).toEqual({ msPerPing: 0.25, marginMs: 0.5, roundMs: 80 });
  });

  test('a ping that arrived out of order raises the margin by what it would have missed', () => {
    const arrivals = inOrder(11, 1);
    // Ping 5 arrived first: holding 5 ms for the pings after it and 2 (a fifth of the spread), it would
    // have left 3 ms before the last arrival.
    arrivals[5] = { k: 5, receivedAtMs: start + 30 };
    expect(learnPlan(undefined, arrivals, 11, 60)).toEqual({ msPerPing: 1, marginMs: 3, roundMs: 60 });
  });

  test('a slower past fades by a fifth per clean run', () => {
    const slow = { msPerPing: 1, marginMs: 10, roundMs: 300 };
    expect(learnPlan(slow, inOrder(11, 0.1), 11, 40)).toEqual({ msPerPing: 0.8, marginMs: 8, roundMs: 40 });
  });

  test('one environment has no spread to learn: its hold is the margin', () => {
    const plan = learnPlan(undefined, [{ k: 0, receivedAtMs: start + 12 }], 1, 15);
    expect(plan).toEqual({ msPerPing: 0, marginMs: 0.5, roundMs: 15 });
    expect(holdFor(plan, 0, 1)).toBe(0.5);
  });

  test('holdFor: the arrivals still ahead, a fifth of the spread, the margin; capped at 10 s', () => {
    const plan = { msPerPing: 0.2, marginMs: 1, roundMs: 100 };
    expect(holdFor(plan, 0, 500)).toBeCloseTo(499 * 0.2 * 1.2 + 1, 1);
    expect(holdFor(plan, 499, 500)).toBeCloseTo(0.2 * 499 * 0.2 + 1, 1);
    expect(holdFor({ ...plan, msPerPing: 100 }, 0, 500)).toBe(10_000);
  });
});

test('parseTargets accepts CloudFormation strings and rejects malformed targets', () => {
  expect(parseTargets([{ functionArn: ARN, concurrency: '3', holdMs: '250' }])).toEqual([{ functionArn: ARN, concurrency: 3, holdMs: 250 }]);
  expect(() => parseTargets([])).toThrow(/expected a non-empty 'targets' list/);
  expect(() => parseTargets(undefined)).toThrow(/expected a non-empty 'targets' list, got undefined/);
  expect(() => parseTargets([{ functionArn: 'web', concurrency: 1, holdMs: 1 }])).toThrow(/target 0 is malformed/);
  expect(() => parseTargets([{ functionArn: ARN, concurrency: 0, holdMs: 1 }])).toThrow(/target 0 is malformed/);
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
    lambdaMock.on(InvokeCommand).callsFake(async () => answer(`env-${n++}`, true, 10));
    await handler(event('Create', [{ functionArn: ARN, concurrency: '2', holdMs: '20' }]));
    expect(lambdaMock.commandCalls(InvokeCommand)).toHaveLength(2);
    expect(responses).toHaveLength(1);
    expect(responses[0]).toMatchObject({ method: 'PUT', Status: 'SUCCESS', RequestId: 'req', LogicalResourceId: 'Prewarm', Data: { Summary: 'web: 2/2' } });
  });

  test('Delete answers SUCCESS without pinging', async () => {
    await handler(event('Delete', [{ functionArn: ARN, concurrency: '2', holdMs: '20' }]));
    expect(lambdaMock.commandCalls(InvokeCommand)).toHaveLength(0);
    expect(responses[0]).toMatchObject({ Status: 'SUCCESS' });
  });

  test('a broken warm-up never fails the deploy', async () => {
    await handler(event('Update', 'not a list'));
    expect(responses[0]).toMatchObject({ Status: 'SUCCESS', Reason: expect.stringMatching(/pre-warm skipped: warmer: expected a non-empty 'targets' list/) });
  });
});
