// Warm pings, the cold-start metrics line, and how the shim answers what the app cannot handle.
import { eventFor, type Json, lambdaContext } from './support/events';
import { FIXTURES, loadFixture } from './support/fixtures';
import { createShim, type Shim } from '../../../runtime/node/shim';
import { holdDeadline, MAX_HOLD_MS, RESOLUTION_MS } from '../../../runtime/node/warm';

/** The Express fixture's request counter, from the registry the shims currently load from. */
const requestCount = (): number => loadFixture<{ requestCount: () => number }>('express-app.js').requestCount();

function expressShim(): Shim {
  return createShim({ app: 'express-app.app', kind: 'listener', taskRoot: FIXTURES, functionName: 'test-fn' });
}

function ping(fields: Json): Json {
  return { warmWeb: { v: 1, round: 'r-1732400000000-ab12', expected: 20, holdUntilMs: Date.now(), ...fields } };
}

/** Captures what the shim writes to stdout (where the EMF line goes) without printing it. */
function captureStdout(): { lines: () => string[]; restore: () => void } {
  const written: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  });
  return { lines: () => written.join('').split('\n').filter(Boolean), restore: () => spy.mockRestore() };
}

const emfLines = (lines: string[]): Json[] => lines.map((line) => JSON.parse(line) as Json).filter((doc) => '_aws' in doc);

afterEach(() => {
  jest.restoreAllMocks();
  jest.useRealTimers();
});

describe('warm ping', () => {
  test('20 concurrent pings are held to the barrier and answered by one environment without reaching the app', async () => {
    // A fresh module registry, so INIT really loads Express rather than finding it cached.
    jest.resetModules();
    const shim = expressShim();
    await shim.ready;
    const stdout = captureStdout();
    const before = requestCount();
    const holdUntilMs = Date.now() + 300;
    const event = ping({ holdUntilMs });
    const answers = await Promise.all(Array.from({ length: 20 }, () => shim.handler(event, lambdaContext())
      .then((answer) => ({ answer: (answer as { warmWeb: Json }).warmWeb, at: Date.now() }))));
    stdout.restore();

    expect(requestCount()).toBe(before);
    for (const { answer, at } of answers) {
      // The barrier runs on the fractional epoch clock; Date.now() may read up to 1 ms behind it.
      expect(at).toBeGreaterThanOrEqual(holdUntilMs - 1);
      expect(answer).toEqual({
        v: 1,
        round: 'r-1732400000000-ab12',
        environmentId: shim.environmentId,
        coldStart: expect.any(Boolean),
        initDurationMs: shim.initDurationMs,
        receivedAtMs: expect.any(Number),
        heldMs: expect.any(Number),
        runtime: 'node',
      });
      // Held from its own arrival until the barrier, however late the machine got to it.
      expect(answer.heldMs).toBeGreaterThanOrEqual(holdUntilMs - (answer.receivedAtMs as number) - RESOLUTION_MS);
    }
    expect(answers.map(({ answer }) => answer.coldStart)).toEqual([true, ...Array(19).fill(false)]);
    expect(shim.environmentId).toMatch(/^[0-9a-f]{16}$/);
    expect(shim.initDurationMs).toBeGreaterThan(1);
    // A ping that is the environment's first invoke still counts as its cold start.
    expect(emfLines(stdout.lines())).toHaveLength(1);
  });

  test('a later request is not a cold start and reaches the app', async () => {
    const shim = expressShim();
    const stdout = captureStdout();
    await shim.handler(ping({}), lambdaContext());
    stdout.restore();
    const before = requestCount();
    const result = await shim.handler(eventFor('http', { method: 'GET', path: '/hello' }), lambdaContext()) as Json;
    expect(result.statusCode).toBe(200);
    expect(requestCount()).toBe(before + 1);
    const again = await shim.handler(ping({}), lambdaContext()) as { warmWeb: Json };
    expect(again.warmWeb.coldStart).toBe(false);
  });

  /** Answers `event` on fake timers, checking it is still held 1 ms before `heldMs` and answered at it. */
  async function heldOnFakeTimers(shim: Shim, event: Json, context = lambdaContext(), heldMs: number): Promise<Json> {
    let answer: { warmWeb: Json } | undefined;
    const pending = shim.handler(event, context).then((result) => {
      answer = result as { warmWeb: Json };
    });
    if (heldMs > 0) {
      await jest.advanceTimersByTimeAsync(heldMs - 1);
      expect(answer).toBeUndefined();
    }
    await jest.advanceTimersByTimeAsync(heldMs > 0 ? 1 : 0);
    await pending;
    expect(answer!.warmWeb.heldMs).toBe(heldMs);
    return answer!.warmWeb;
  }
  const T = 1_732_400_000_000;
  const fakeClock = () => jest.useFakeTimers({ now: T, doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });

  test('the hold is capped by the remaining time less 500 ms', async () => {
    const shim = expressShim();
    captureStdout();
    fakeClock();
    const context = lambdaContext({ getRemainingTimeInMillis: () => 800 });
    const answer = await heldOnFakeTimers(shim, ping({ holdUntilMs: T + 10_000 }), context, 300);
    expect(answer.receivedAtMs).toBe(T);
  });

  test('the hold is capped at 60 s', async () => {
    const shim = expressShim();
    captureStdout();
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
    let answer: { warmWeb: Json } | undefined;
    const pending = shim.handler(ping({ holdUntilMs: Date.now() + 10 * 60_000 }), lambdaContext({ getRemainingTimeInMillis: () => 15 * 60_000 }))
      .then((result) => {
        answer = result as { warmWeb: Json };
      });
    await jest.advanceTimersByTimeAsync(MAX_HOLD_MS - 1);
    expect(answer).toBeUndefined();
    await jest.advanceTimersByTimeAsync(1);
    await pending;
    expect(answer?.warmWeb.heldMs).toBe(MAX_HOLD_MS);
  });

  test('a barrier already passed is answered at once', async () => {
    const shim = expressShim();
    captureStdout();
    fakeClock();
    await heldOnFakeTimers(shim, ping({ holdUntilMs: T - 5_000 }), lambdaContext(), 0);
  });

  test('holdForMs holds that long after the ping arrives, never past holdUntilMs', async () => {
    const shim = expressShim();
    captureStdout();
    fakeClock();
    const answer = await heldOnFakeTimers(shim, ping({ holdUntilMs: T + 5_000, holdForMs: 120 }), lambdaContext(), 120); // not the 5 s of holdUntilMs
    expect(answer.receivedAtMs).toBe(T);
    const capped = await heldOnFakeTimers(shim, ping({ holdUntilMs: T + 120 + 50, holdForMs: 5_000 }), lambdaContext(), 50);
    expect(capped.receivedAtMs).toBe(T + 120);
  });

  test('holdDeadline takes the earliest of barrier, 60 s and remaining time less 500 ms', () => {
    const now = 1_000_000;
    const at = (holdUntilMs: number, remaining?: number): number => holdDeadline({ round: 'r', expected: 1, holdUntilMs }, now, remaining);
    expect(at(now + 300)).toBe(now + 300);
    expect(at(now + 300, 10_000)).toBe(now + 300);
    expect(at(now + 120_000)).toBe(now + 60_000);
    expect(at(now + 120_000, 30_000)).toBe(now + 29_500);
    expect(at(now + 300, 600)).toBe(now + 100);
    const after = (holdForMs: number, holdUntilMs = now + 120_000): number => holdDeadline({ round: 'r', expected: 1, holdUntilMs, holdForMs }, now, 30_000);
    expect(after(40)).toBe(now + 40);
    expect(after(40, now + 10)).toBe(now + 10);
    expect(after(90_000)).toBe(now + 29_500);
  });

  test.each([
    ['not an object', 'yes', 'warmWeb must be an object, got "yes"'],
    ['null', null, 'warmWeb must be an object, got null'],
    ['an array', [1], 'warmWeb must be an object, got [1]'],
    ['wrong version', { v: 2, round: 'r', expected: 1, holdUntilMs: 1 }, 'v must be 1, got 2'],
    ['empty round', { v: 1, round: '', expected: 1, holdUntilMs: 1 }, 'round must be a non-empty string, got ""'],
    ['missing round', { v: 1, expected: 1, holdUntilMs: 1 }, 'round must be a non-empty string, got nothing'],
    ['negative expected', { v: 1, round: 'r', expected: -1, holdUntilMs: 1 }, 'expected must be an integer >= 1, got -1'],
    ['fractional expected', { v: 1, round: 'r', expected: 1.5, holdUntilMs: 1 }, 'expected must be an integer >= 1, got 1.5'],
    ['string holdUntilMs', { v: 1, round: 'r', expected: 1, holdUntilMs: 'soon' }, 'holdUntilMs must be an epoch time in milliseconds, got "soon"'],
    ['negative holdForMs', { v: 1, round: 'r', expected: 1, holdUntilMs: 1, holdForMs: -1 }, 'holdForMs must be a number of milliseconds >= 0, got -1'],
    ['string holdForMs', { v: 1, round: 'r', expected: 1, holdUntilMs: 1, holdForMs: '5' }, 'holdForMs must be a number of milliseconds >= 0, got "5"'],
    ['null holdForMs', { v: 1, round: 'r', expected: 1, holdUntilMs: 1, holdForMs: null }, 'holdForMs must be a number of milliseconds >= 0, got null'],
  ])('a malformed ping (%s) is answered with the error', async (_name, payload, reason) => {
    const shim = expressShim();
    captureStdout();
    const before = requestCount();
    await expect(shim.handler({ warmWeb: payload }, lambdaContext())).resolves.toEqual({ warmWeb: { v: 1, error: `malformed warm ping: ${reason}` } });
    expect(requestCount()).toBe(before);
  });
});

describe('cold-start metrics (EMF)', () => {
  test('exactly one line, on the first invoke, in the documented shape', async () => {
    const shim = expressShim();
    const stdout = captureStdout();
    const before = Date.now();
    await shim.handler(eventFor('http', { method: 'GET', path: '/hello' }), lambdaContext());
    const afterFirst = stdout.lines();
    await shim.handler(eventFor('rest', { method: 'GET', path: '/hello' }), lambdaContext());
    await shim.handler(ping({}), lambdaContext());
    stdout.restore();

    expect(afterFirst).toHaveLength(1);
    expect(stdout.lines()).toEqual(afterFirst);
    const doc = JSON.parse(afterFirst[0]) as Json;
    expect(doc).toEqual({
      _aws: {
        Timestamp: expect.any(Number),
        CloudWatchMetrics: [{
          Namespace: 'WarmWeb',
          Dimensions: [['FunctionName']],
          Metrics: [{ Name: 'ColdStart', Unit: 'Count' }, { Name: 'InitDurationMs', Unit: 'Milliseconds' }],
        }],
      },
      FunctionName: 'test-fn',
      ColdStart: 1,
      InitDurationMs: shim.initDurationMs,
      EnvironmentId: shim.environmentId,
      Runtime: 'node',
    });
    expect((doc._aws as Json).Timestamp).toBeGreaterThanOrEqual(before);
    expect((doc._aws as Json).Timestamp).toBeLessThanOrEqual(Date.now());
  });
});

describe('events the app cannot take', () => {
  test.each([
    ['a plain object', { hello: 'world' }],
    ['an SQS-like batch', { Records: [{ eventSource: 'aws:sqs' }] }],
    ['a request context without method', { requestContext: { requestId: 'x' } }],
    ['a string', 'GET /'],
    ['null', null],
  ])('%s gets the 400 answer and one debug line, no error line', async (_name, event) => {
    const shim = expressShim();
    captureStdout();
    const error = jest.spyOn(console, 'error');
    const log = jest.spyOn(console, 'debug').mockImplementation(() => undefined);
    const before = requestCount();
    const result = await shim.handler(event, lambdaContext()) as Json;
    expect(result).toEqual({
      statusCode: 400,
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      body: expect.stringMatching(/^warm-web: unrecognised event shape \(expected an API Gateway REST or HTTP API, Function URL or ALB event; got .+\)$/),
    });
    expect(log).toHaveBeenCalledTimes(1);
    expect(error).not.toHaveBeenCalled();
    expect(requestCount()).toBe(before);
  });

  test('an Express error gives a 500 and the next request works', async () => {
    const shim = expressShim();
    captureStdout();
    const failed = await shim.handler(eventFor('url', { method: 'GET', path: '/fail' }), lambdaContext()) as Json;
    expect(failed).toMatchObject({ statusCode: 500, body: 'app error: boom from the app' });
    const next = await shim.handler(eventFor('url', { method: 'GET', path: '/hello' }), lambdaContext()) as Json;
    expect(next).toMatchObject({ statusCode: 200, body: '{"hello":"world"}' });
  });

  test('a listener throwing synchronously gives a generic 500, is logged, and the next request works', async () => {
    const shim = createShim({ app: 'throwing-listener.listener', kind: 'listener', taskRoot: FIXTURES });
    captureStdout();
    const log = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const failed = await shim.handler(eventFor('rest', { method: 'GET', path: '/throw' }), lambdaContext()) as Json;
    expect(failed).toEqual({
      statusCode: 500,
      multiValueHeaders: { 'content-type': ['text/plain; charset=utf-8'] },
      body: 'Internal Server Error',
      isBase64Encoded: false,
    });
    expect(log).toHaveBeenCalledTimes(1);
    expect(log.mock.calls[0]).toContainEqual(expect.objectContaining({ message: 'listener exploded' }));
    const next = await shim.handler(eventFor('rest', { method: 'GET', path: '/' }), lambdaContext()) as Json;
    expect(next).toMatchObject({ statusCode: 200, body: expect.stringMatching(/^ok \d+$/) });
  });

  test('a rejected promise from an async listener gives a 500', async () => {
    const shim = createShim({ app: 'throwing-listener.asyncListener', kind: 'listener', taskRoot: FIXTURES });
    captureStdout();
    jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const failed = await shim.handler(eventFor('http', { method: 'GET', path: '/reject' }), lambdaContext()) as Json;
    expect(failed).toMatchObject({ statusCode: 500, body: 'Internal Server Error' });
  });
});
