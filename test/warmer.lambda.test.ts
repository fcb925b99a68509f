import * as http from 'http';
import { AddressInfo } from 'net';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { handler, learnedDeadline, parseTargets, TargetReport, warmTarget } from '../lib/warmer.lambda';

const lambdaMock = mockClient(LambdaClient);
const ARN = 'arn:aws:lambda:us-east-1:123456789012:function:web:live';
const OTHER = 'arn:aws:lambda:us-east-1:123456789012:function:admin:live';

interface Ping { warmWeb: { v: number; round: string; expected: number; holdUntilMs: number } }

function pingOf(input: unknown): Ping {
  return JSON.parse(Buffer.from((input as { Payload: Uint8Array }).Payload).toString('utf-8'));
}

function answer(environmentId: string, coldStart: boolean, heldMs: number) {
  const warmWeb = { v: 1, environmentId, coldStart, heldMs, initDurationMs: 5 };
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

test('learns the dispatch spread: the next deadline is just after the last arrival, plus half the spread', async () => {
  const arn = 'arn:aws:lambda:us-east-1:1:function:learn:live';
  let n = 0;
  // Warm environments that held 900 of 1000 ms: the last one arrived 100 ms after the round began.
  lambdaMock.on(InvokeCommand).callsFake(async () => answer(`env-${n++}`, false, 900));
  await warmTarget({ functionArn: arn, concurrency: 2, holdMs: 1000 });
  const before = Date.now();
  await warmTarget({ functionArn: arn, concurrency: 2, holdMs: 1000 });
  const second = lambdaMock.commandCalls(InvokeCommand).slice(2).map((c) => pingOf(c.args[0].input).warmWeb.holdUntilMs);
  const hold = second[0] - before;
  // Both arrived 100 ms into the round (spread 0): the deadline is 100 + 5 ms.
  expect(hold).toBeGreaterThanOrEqual(100);
  expect(hold).toBeLessThan(500); // far below the 1000 ms it was given: it learned
});

test('learnedDeadline leaves half the spread, at least 5 ms, after the last arrival', () => {
  expect(learnedDeadline(10, 110)).toBe(160);
  expect(learnedDeadline(40, 40)).toBe(45);
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
