// The layer bundle itself, built by esbuild as the project builds it and loaded in a fresh Node
// process as Lambda loads it. Set WARM_WEB_TEST_NODE to run these under another Node binary.
import { execFile } from 'child_process';
import * as path from 'path';
import { eventFor, type Json } from './support/events';
import { FIXTURES } from './support/fixtures';
import { buildNodeLayer, type NodeLayer } from './support/layer';

const NODE = process.env.WARM_WEB_TEST_NODE || process.execPath;
const RUNNER = path.join(__dirname, 'support', 'lambda-runner.js');

let layer: NodeLayer;
let bundle: string;

interface Run {
  readonly code: number | null;
  readonly stderr: string;
  readonly emf: Json[];
  /** One per event: the handler's result, or `{ error }` when the invoke failed. */
  readonly results: Json[];
  /** Other stdout lines (console.info). */
  readonly logs: string[];
}

function run(app: string, kind: string, events: unknown[], extraEnv: Record<string, string> = {}): Promise<Run> {
  const env = {
    PATH: process.env.PATH,
    LAMBDA_TASK_ROOT: FIXTURES,
    WARM_WEB_APP: app,
    WARM_WEB_APP_KIND: kind,
    AWS_LAMBDA_FUNCTION_NAME: 'bundle-fn',
    NODE_ENV: 'production',
    ...extraEnv,
  };
  return new Promise((resolve) => {
    execFile(NODE, [RUNNER, bundle, JSON.stringify(events)], { env, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const emf: Json[] = [];
      const results: Json[] = [];
      const logs: string[] = [];
      for (const line of stdout.split('\n').filter(Boolean)) {
        if (line.startsWith('RESULT ')) {
          results.push(JSON.parse(line.slice('RESULT '.length)) as Json);
        } else if (line.startsWith('ERROR ')) {
          results.push({ error: line.slice('ERROR '.length) });
        } else if (line.startsWith('{')) {
          emf.push(JSON.parse(line) as Json);
        } else {
          // console.info goes to stdout too (the priming summary).
          logs.push(line);
        }
      }
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stderr, emf, results, logs });
    });
  });
}

beforeAll(async () => {
  layer = await buildNodeLayer();
  bundle = layer.entry;
}, 30_000);

afterAll(() => layer.remove());

test('serves the Express fixture: HTTP events, a warm ping, and one EMF line', async () => {
  const ping = { warmWeb: { v: 1, round: 'bundle', expected: 1, holdUntilMs: Date.now() + 100 } };
  const { code, emf, results } = await run('express-app.app', 'listener', [
    ping,
    eventFor('http', { method: 'GET', path: '/hello', headers: [['host', 'example.test']] }),
    eventFor('rest', { method: 'POST', path: '/json', headers: [['content-type', 'application/json']], body: Buffer.from('{"a":[1,2]}') }),
    eventFor('alb-multi', { method: 'GET', path: '/bytes' }),
    eventFor('url', { method: 'GET', path: '/count' }),
  ]);
  expect(code).toBe(0);
  const [answer, hello, json, bytes, count] = results;
  expect(answer).toEqual({
    warmWeb: {
      v: 1,
      round: 'bundle',
      environmentId: expect.stringMatching(/^[0-9a-f]{16}$/),
      coldStart: true,
      initDurationMs: expect.any(Number),
      receivedAtMs: expect.any(Number),
      heldMs: expect.any(Number),
      runtime: 'node',
    },
  });
  expect((answer.warmWeb as Json).initDurationMs).toBeGreaterThan(0);
  expect(hello).toMatchObject({ statusCode: 200, body: '{"hello":"world"}', isBase64Encoded: false });
  expect(json).toMatchObject({ statusCode: 201, body: '{"received":{"a":[1,2]}}' });
  expect(bytes).toMatchObject({ statusCode: 200, statusDescription: '200 OK', isBase64Encoded: true, body: 'AP8QgP4A' });
  // The ping never reached Express: /count is the app's fourth request.
  expect(JSON.parse(count.body as string)).toEqual({ requests: 4 });
  expect(emf).toEqual([expect.objectContaining({
    FunctionName: 'bundle-fn',
    ColdStart: 1,
    Runtime: 'node',
    EnvironmentId: (answer.warmWeb as Json).environmentId,
    InitDurationMs: (answer.warmWeb as Json).initDurationMs,
  })]);
});

test.each([
  ['an ES module (.mjs)', 'esm-handler.handler', { kind: 'esm', event: { n: 1 }, requestId: 'invoke-0' }],
  ['an ES module default export', 'esm-handler.default', { kind: 'esm-default', event: { n: 1 } }],
  ['a .js ES module under "type": "module"', 'esm-module/app.handler', { kind: 'esm-type-module', event: { n: 1 } }],
  ['an ES module with top-level await (import(), evaluated once)', 'esm-tla.handler', { kind: 'esm-tla', greeting: 'awaited', evaluations: 1, event: { n: 1 } }],
  ['a CommonJS callback handler', 'callback-handler.handler', { kind: 'callback', event: { n: 1 }, requestId: 'invoke-0' }],
])('loads %s', async (_name, app, expected) => {
  const { code, emf, results } = await run(app, 'handler', [{ n: 1 }, { warmWeb: { v: 1, round: 'r', expected: 1, holdUntilMs: 0 } }]);
  expect(code).toBe(0);
  expect(results[0]).toEqual(expected);
  expect(results[1]).toMatchObject({ warmWeb: { coldStart: false, runtime: 'node' } });
  expect(emf).toHaveLength(1);
});

test('a module that cannot be found fails INIT naming WARM_WEB_APP', async () => {
  const { code, stderr, results } = await run('nope.handler', 'handler', [{}]);
  expect(code).not.toBe(0);
  expect(stderr).toContain('WARM_WEB_APP="nope.handler": no module nope');
  expect(results).toEqual([]);
});

test('an ES module that needs import() and lacks the export fails every invoke naming WARM_WEB_APP', async () => {
  const { code, results } = await run('esm-tla.nothere', 'handler', [{}, {}]);
  expect(code).toBe(0);
  expect(results).toEqual([
    { error: expect.stringContaining('WARM_WEB_APP="esm-tla.nothere"') },
    { error: expect.stringContaining('has no export "nothere"') },
  ]);
});

test('primes from WARM_WEB_PRIME before the first invoke, which is still the one cold start', async () => {
  const { code, emf, results, logs, stderr } = await run('express-app.app', 'listener', [
    eventFor('url', { method: 'GET', path: '/count' }),
    { warmWeb: { v: 1, round: 'r', expected: 1, holdUntilMs: 0 } },
  ], { WARM_WEB_PRIME: '["/hello","/fail"]' });
  expect(code).toBe(0);
  // Two priming requests reached Express before the first invoke, its third request.
  expect(JSON.parse(results[0].body as string)).toEqual({ requests: 3 });
  expect(results[1]).toMatchObject({ warmWeb: { coldStart: false } });
  expect(logs).toEqual([expect.stringMatching(/primed 2 paths in [\d.]+ ms: \/hello 200, \/fail 500$/)]);
  expect(stderr).toContain('warm-web: priming GET /fail failed with status 500 (not fatal)');
  expect(emf).toEqual([expect.objectContaining({ ColdStart: 1, FunctionName: 'bundle-fn' })]);
});

test('reports an INIT slower than WARM_WEB_INIT_WARN_MS with one SlowInit line at INIT', async () => {
  const slow = await run('slow-listener.listener', 'listener', [eventFor('http', { method: 'GET', path: '/' })], { WARM_WEB_INIT_WARN_MS: '100' });
  expect(slow.code).toBe(0);
  expect(slow.results[0]).toMatchObject({ statusCode: 200, body: 'booted' });
  expect(slow.stderr).toMatch(/warm-web: slow INIT: [\d.]+ ms \(load and priming\) is over the WARM_WEB_INIT_WARN_MS threshold of 100 ms/);
  const [slowInit, coldStart] = slow.emf;
  expect(slow.emf).toHaveLength(2);
  expect(slowInit).toMatchObject({ SlowInit: 1, InitWarnMs: 100, FunctionName: 'bundle-fn' });
  expect(coldStart).toMatchObject({ ColdStart: 1, InitDurationMs: slowInit.InitDurationMs, EnvironmentId: slowInit.EnvironmentId });
  expect(slowInit.InitDurationMs).toBeGreaterThanOrEqual(140);

  const quick = await run('slow-listener.listener', 'listener', [eventFor('http', { method: 'GET', path: '/' })]);
  expect(quick.emf).toEqual([expect.objectContaining({ ColdStart: 1 })]);
  expect(quick.stderr).not.toContain('slow INIT');
});
