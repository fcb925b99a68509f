// INIT options: priming (WARM_WEB_PRIME) and the INIT budget (WARM_WEB_INIT_WARN_MS, SlowInit).
import { eventFor, type Json, lambdaContext } from './support/events';
import { FIXTURES, loadFixture } from './support/fixtures';
import { DEFAULT_INIT_WARN_MS, initWarnMsFrom, primeEvent, primeHost, primePathsFrom } from '../../../runtime/node/prime';
import { createShim, type ShimOptions } from '../../../runtime/node/shim';

interface Seen {
  method: string;
  url: string;
  headers: Record<string, string>;
  requestId: string;
  remaining: number;
  basePath: string;
  encrypted: boolean;
}

const requestCount = (): number => loadFixture<{ requestCount: () => number }>('express-app.js').requestCount();
const seen = (): Seen[] => loadFixture<{ seen: Seen[] }>('recording-listener.js').seen;

/** Captures what the shim writes to stdout (where EMF lines go) without printing it. */
function captureStdout(): { docs: () => Json[] } {
  const written: string[] = [];
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  });
  return { docs: () => written.join('').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Json) };
}

function quietConsole(): { info: jest.SpyInstance; warn: jest.SpyInstance; error: jest.SpyInstance } {
  return {
    info: jest.spyOn(console, 'info').mockImplementation(() => undefined),
    warn: jest.spyOn(console, 'warn').mockImplementation(() => undefined),
    error: jest.spyOn(console, 'error').mockImplementation(() => undefined),
  };
}

const logged = (spy: jest.SpyInstance): string => spy.mock.calls.map((args: unknown[]) => args.map(String).join(' ')).join('\n');

function shim(options: Partial<ShimOptions>) {
  return createShim({ app: 'express-app.app', kind: 'listener', taskRoot: FIXTURES, functionName: 'init-fn', ...options });
}

afterEach(() => {
  jest.restoreAllMocks();
});

describe('priming', () => {
  test('the Express fixture is primed before the first invoke, which is still the one cold start', async () => {
    const stdout = captureStdout();
    const console_ = quietConsole();
    const before = requestCount();
    const primed = shim({ prime: ['/hello', '/echo?x=1'] });
    await primed.ready;

    // Both paths went through Express during INIT, with no invoke yet and no cold-start line.
    expect(requestCount()).toBe(before + 2);
    expect(stdout.docs()).toEqual([]);
    expect(logged(console_.info)).toMatch(/^warm-web: primed 2 paths in \d+(\.\d)? ms: \/hello 200, \/echo\?x=1 200$/);
    expect(primed.initDurationMs).toBeGreaterThan(0);

    const first = await primed.handler(eventFor('http', { method: 'GET', path: '/count' }), lambdaContext()) as Json;
    expect(JSON.parse(first.body as string)).toEqual({ requests: before + 3 });
    await primed.handler(eventFor('http', { method: 'GET', path: '/hello' }), lambdaContext());
    const ping = await primed.handler({ warmWeb: { v: 1, round: 'r', expected: 1, holdUntilMs: 0 } }, lambdaContext()) as { warmWeb: Json };
    expect(ping.warmWeb.coldStart).toBe(false);
    const docs = stdout.docs();
    expect(docs).toHaveLength(1);
    expect(docs[0]).toMatchObject({ ColdStart: 1, FunctionName: 'init-fn', InitDurationMs: primed.initDurationMs });
  });

  test('an invoke that arrives while priming is in flight waits for it', async () => {
    captureStdout();
    quietConsole();
    const before = requestCount();
    const primed = shim({ prime: ['/hello', '/hello', '/hello'] });
    // No await of ready: the invoke itself must wait for priming to finish.
    const answer = await primed.handler(eventFor('http', { method: 'GET', path: '/count' }), lambdaContext()) as Json;
    expect(JSON.parse(answer.body as string)).toEqual({ requests: before + 4 });
  });

  test('a raw listener sees a GET with Host localhost over https', async () => {
    captureStdout();
    quietConsole();
    const start = seen().length;
    const primed = createShim({ app: 'recording-listener.listener', kind: 'listener', taskRoot: FIXTURES, prime: ['/a%20b', '/q?x=1&y=%2F'] });
    await primed.ready;
    const requests = seen().slice(start);
    expect(requests).toHaveLength(2);
    expect(requests.map((r) => r.url)).toEqual(['/a%20b', '/q?x=1&y=%2F']);
    const [first] = requests;
    expect(first.method).toBe('GET');
    expect(first.headers).toMatchObject({ 'host': 'localhost', 'x-forwarded-proto': 'https', 'x-warm-web-prime': '1', 'user-agent': 'warm-web-prime' });
    expect(first.encrypted).toBe(true);
    expect(first.basePath).toBe('');
    expect(first.requestId).toBe('warm-web-prime-0');
    expect(first.remaining).toBeGreaterThan(0);
    expect(first.remaining).toBeLessThanOrEqual(10_000);

    const answer = await primed.handler(eventFor('url', { method: 'GET', path: '/real' }), lambdaContext()) as Json;
    expect(answer.body).toBe(`seen ${start + 3}`);
  });

  test('failing paths (5xx, a throwing listener) are logged with path and status, never fatal', async () => {
    captureStdout();
    const console_ = quietConsole();
    const primed = createShim({ app: 'throwing-listener.listener', kind: 'listener', taskRoot: FIXTURES, prime: ['/throw', '/fine'] });
    await expect(primed.ready).resolves.toBeUndefined();
    expect(logged(console_.warn)).toContain('warm-web: priming GET /throw failed with status 500 (not fatal)');
    expect(logged(console_.warn)).not.toContain('/fine');
    expect(logged(console_.error)).toContain('listener exploded');
    expect(logged(console_.info)).toMatch(/: \/throw 500, \/fine 200$/);
    const answer = await primed.handler(eventFor('rest', { method: 'GET', path: '/' }), lambdaContext()) as Json;
    expect(answer.statusCode).toBe(200);

    const recording = createShim({ app: 'recording-listener.listener', kind: 'listener', taskRoot: FIXTURES, prime: ['/fail'] });
    await recording.ready;
    expect(logged(console_.warn)).toContain('warm-web: priming GET /fail failed with status 503 (not fatal)');
  });

  test('a plain handler is not primed', async () => {
    captureStdout();
    const console_ = quietConsole();
    const plain = createShim({ app: 'cjs-handler.handler', kind: 'handler', taskRoot: FIXTURES, prime: ['/'] });
    await plain.ready;
    expect(logged(console_.warn)).toContain('WARM_WEB_PRIME is ignored for a plain handler');
    expect(console_.info).not.toHaveBeenCalled();
  });

  test('without prime paths INIT stays synchronous', () => {
    captureStdout();
    const plain = shim({ prime: [] });
    expect(plain.initDurationMs).toBeDefined();
  });

  test('the priming event is an HTTP API event the shim recognises', () => {
    expect(primeEvent('/p?q=1', 3)).toMatchObject({
      version: '2.0',
      rawPath: '/p',
      rawQueryString: 'q=1',
      headers: { 'host': 'localhost', 'x-forwarded-proto': 'https' },
      requestContext: { http: { method: 'GET', path: '/p' }, requestId: 'warm-web-prime-3', stage: '$default' },
    });
  });

  test.each([
    [undefined, 'localhost'],
    ['', 'localhost'],
    ['www.example.com,.cloudfront.net', 'www.example.com'],
    [' .example.com , www.example.com', 'example.com'],
    ['*, api.example.com', 'api.example.com'],
    ['*', 'localhost'],
  ])('WARM_WEB_ALLOWED_HOSTS=%p primes with Host %p', (allowed, expected) => {
    expect(primeHost({ WARM_WEB_ALLOWED_HOSTS: allowed })).toBe(expected);
  });

  test('the priming event carries the first allowed host', () => {
    const saved = process.env.WARM_WEB_ALLOWED_HOSTS;
    process.env.WARM_WEB_ALLOWED_HOSTS = '.example.com,www.example.org';
    try {
      expect(primeEvent('/', 0)).toMatchObject({
        headers: { host: 'example.com' },
        requestContext: { domainName: 'example.com', domainPrefix: 'example' },
      });
    } finally {
      if (saved === undefined) delete process.env.WARM_WEB_ALLOWED_HOSTS;
      else process.env.WARM_WEB_ALLOWED_HOSTS = saved;
    }
  });

  test.each([
    [undefined, [], undefined],
    ['', [], undefined],
    ['["/", "/health"]', ['/', '/health'], undefined],
    ['not json', [], 'WARM_WEB_PRIME is not JSON'],
    ['{"path": "/"}', [], 'must be a JSON array of paths'],
    ['["/ok", "relative", 3, null]', ['/ok'], 'entry "relative" is not a path'],
  ])('WARM_WEB_PRIME=%p', (raw, expected, warning) => {
    const { warn } = quietConsole();
    expect(primePathsFrom(raw)).toEqual(expected);
    if (warning === undefined) {
      expect(warn).not.toHaveBeenCalled();
    } else {
      expect(logged(warn)).toContain(warning);
    }
  });
});

describe('INIT budget', () => {
  test('a slow load emits one SlowInit line and a warning, at INIT', async () => {
    // A fresh module registry, so INIT really loads the slow module rather than finding it cached.
    jest.resetModules();
    const stdout = captureStdout();
    const { warn } = quietConsole();
    const before = Date.now();
    const slow = createShim({ app: 'slow-listener.listener', kind: 'listener', taskRoot: FIXTURES, functionName: 'slow-fn', initWarnMs: 100 });
    // Before any invoke.
    const docs = stdout.docs();
    expect(docs).toHaveLength(1);
    const [doc] = docs;
    expect(doc).toEqual({
      _aws: {
        Timestamp: expect.any(Number),
        CloudWatchMetrics: [{ Namespace: 'WarmWeb', Dimensions: [['FunctionName']], Metrics: [{ Name: 'SlowInit', Unit: 'Count' }] }],
      },
      FunctionName: 'slow-fn',
      SlowInit: 1,
      InitDurationMs: slow.initDurationMs,
      InitWarnMs: 100,
      EnvironmentId: slow.environmentId,
      Runtime: 'node',
    });
    expect((doc._aws as Json).Timestamp).toBeGreaterThanOrEqual(before);
    expect(slow.initDurationMs).toBeGreaterThanOrEqual(140);
    expect(logged(warn)).toBe(`warm-web: slow INIT: ${slow.initDurationMs} ms (load and priming) is over the WARM_WEB_INIT_WARN_MS threshold of 100 ms; on-demand INIT is cut off at 10 s`);

    await slow.handler(eventFor('http', { method: 'GET', path: '/' }), lambdaContext());
    await slow.handler(eventFor('http', { method: 'GET', path: '/' }), lambdaContext());
    const after = stdout.docs().slice(1);
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({ ColdStart: 1 });
  });

  test('under the threshold nothing is emitted', () => {
    jest.resetModules();
    const stdout = captureStdout();
    const { warn } = quietConsole();
    const slow = createShim({ app: 'slow-listener.listener', kind: 'listener', taskRoot: FIXTURES, initWarnMs: 60_000 });
    expect(slow.initDurationMs).toBeGreaterThanOrEqual(140);
    expect(stdout.docs()).toEqual([]);
    expect(warn).not.toHaveBeenCalled();
  });

  test('priming counts towards the budget', async () => {
    const stdout = captureStdout();
    quietConsole();
    const primed = createShim({ app: 'recording-listener.listener', kind: 'listener', taskRoot: FIXTURES, prime: ['/slow', '/slow'], initWarnMs: 200 });
    expect(stdout.docs()).toEqual([]);
    await primed.ready;
    expect(primed.initDurationMs).toBeGreaterThanOrEqual(220);
    expect(stdout.docs()).toEqual([expect.objectContaining({ SlowInit: 1, InitDurationMs: primed.initDurationMs, InitWarnMs: 200 })]);
  });

  test('a fast INIT with the default threshold is quiet', () => {
    const stdout = captureStdout();
    const { warn } = quietConsole();
    shim({});
    expect(stdout.docs()).toEqual([]);
    expect(warn).not.toHaveBeenCalled();
  });

  test.each([
    [undefined, 8000, false],
    ['', 8000, false],
    ['250', 250, false],
    ['soon', 8000, true],
    ['0', 8000, true],
    ['-5', 8000, true],
    ['Infinity', 8000, true],
  ])('WARM_WEB_INIT_WARN_MS=%p is %p', (raw, expected, warns) => {
    const { warn } = quietConsole();
    expect(initWarnMsFrom(raw)).toBe(expected);
    expect(warn).toHaveBeenCalledTimes(warns ? 1 : 0);
    expect(DEFAULT_INIT_WARN_MS).toBe(8000);
  });
});
