import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { pythonForTests } from './python';
import { LocalLambda } from '../../local/local-lambda';

const APPS = path.join(__dirname, 'apps');
const requestLog = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-local-')), 'requests.log');
const python = pythonForTests();

const local = new LocalLambda([
  { name: 'web', runtime: 'python', python, codeDir: APPS, environment: { WARM_WEB_APP: 'counting_app:app', WARM_WEB_APP_KIND: 'wsgi', REQUEST_LOG: requestLog }, idleMs: 1500, maxEnvironments: 3 },
  { name: 'slow', runtime: 'python', python, codeDir: APPS, environment: { WARM_WEB_APP: 'slow_init_app:app', WARM_WEB_APP_KIND: 'wsgi', INIT_SECONDS: '0.3' }, timeoutMs: 5000 },
  { name: 'broken', runtime: 'python', python, codeDir: APPS, environment: { WARM_WEB_APP: 'failing_app:app', WARM_WEB_APP_KIND: 'wsgi' } },
  { name: 'records', runtime: 'python', python, codeDir: APPS, environment: { WARM_WEB_APP: 'counting_app:app', WARM_WEB_APP_KIND: 'wsgi', REQUEST_LOG: requestLog } },
  { name: 'selfcall', runtime: 'python', python, codeDir: APPS, environment: { WARM_WEB_APP: 'self_call.handler', WARM_WEB_APP_KIND: 'handler' } },
  { name: 'listener', runtime: 'node', codeDir: APPS, environment: { WARM_WEB_APP: 'counting-listener.app', WARM_WEB_APP_KIND: 'listener', REQUEST_LOG: requestLog } },
]);
let client: LambdaClient;

beforeAll(async () => {
  await local.start();
  client = new LambdaClient({ endpoint: local.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, maxAttempts: 1 });
});
afterAll(() => local.stop());

function httpEvent(rawPath: string) {
  return {
    version: '2.0',
    rawPath,
    rawQueryString: '',
    headers: { host: 'example.lambda-url.us-east-1.on.aws' },
    requestContext: { http: { method: 'GET', path: rawPath, sourceIp: '127.0.0.1' }, domainName: 'example.lambda-url.us-east-1.on.aws', stage: '$default' },
    isBase64Encoded: false,
  };
}

async function invoke(name: string, event: unknown) {
  const out = await client.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from(JSON.stringify(event)) }));
  return { out, body: JSON.parse(Buffer.from(out.Payload ?? []).toString('utf-8')) };
}

test('serves a real request through the shim and the app, by name, ARN or qualified ARN', async () => {
  for (const name of ['web', local.aliasArn('web'), 'web:live']) {
    const { out, body } = await invoke(name, httpEvent('/hello'));
    expect(out.StatusCode).toBe(200);
    expect(out.FunctionError).toBeUndefined();
    expect(body.statusCode).toBe(200);
    expect(body.body).toMatch(/^pid \d+$/);
  }
});

test('an idle environment takes the next request; concurrent requests get their own', async () => {
  const first = await invoke('web', httpEvent('/a'));
  const again = await invoke('web', httpEvent('/b'));
  expect(again.body.body).toBe(first.body.body);

  const started = local.stats('web').environmentsStarted;
  const holdUntilMs = Date.now() + 400;
  const ping = { warmWeb: { v: 1, round: 'r1', expected: 3, holdUntilMs } };
  const answers = await Promise.all([1, 2, 3].map(() => invoke('web', ping)));
  const ids = new Set(answers.map((a) => a.body.warmWeb.environmentId));
  expect(ids.size).toBe(3);
  expect(local.stats('web').environmentsStarted).toBeGreaterThan(started);
  expect(local.stats('web').peakConcurrency).toBeGreaterThanOrEqual(3);
});

test('records which environment served each invoke, whether it started cold, and a warm ping\'s round', async () => {
  const ping = { warmWeb: { v: 1, round: 'rec', expected: 2, holdUntilMs: Date.now() + 400 } };
  await Promise.all([invoke('records', ping), invoke('records', ping)]);
  const records = local.takeInvocations('records');
  expect(records).toHaveLength(2);
  expect(records.map((r) => r.warmRound)).toEqual(['rec', 'rec']);
  expect(new Set(records.map((r) => r.environment)).size).toBe(2);
  for (const r of records) {
    expect(r.startedMs).toBeGreaterThanOrEqual(r.arrivedMs);
    expect(r.endedMs).toBeGreaterThanOrEqual(r.startedMs);
    // Measured inside the environment: within what the pool saw, never more.
    expect(r.durationMs).toBeGreaterThan(0);
    expect(r.durationMs).toBeLessThanOrEqual(r.endedMs - r.startedMs + 1);
    expect(r.handlerStartedMs).toBeGreaterThanOrEqual(r.startedMs - 1);
  }
  expect(records.every((r) => r.cold)).toBe(true);
  expect(local.takeInvocations('records')).toEqual([]);
  await invoke('records', httpEvent('/records'));
  expect(local.takeInvocations('records').map((r) => r.warmRound)).toEqual([undefined]);
});

test('environments can call the Invoke API of the same server', async () => {
  const { body } = await invoke('selfcall', { call: 'web' });
  expect(body.statusCode).toBe(200);
});

test('beyond maxEnvironments, requests are throttled with TooManyRequestsException', async () => {
  const holdUntilMs = Date.now() + 500;
  const ping = { warmWeb: { v: 1, round: 'r2', expected: 4, holdUntilMs } };
  const results = await Promise.allSettled([1, 2, 3, 4].map(() => invoke('web', ping)));
  const rejected = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
  expect(rejected).toHaveLength(1);
  expect(rejected[0].reason.name).toBe('TooManyRequestsException');
  expect(local.stats('web').throttles).toBe(1);
});

test('idle environments are reclaimed', async () => {
  await invoke('web', httpEvent('/c'));
  expect(local.stats('web').environmentsAlive).toBeGreaterThan(0);
  await new Promise((r) => setTimeout(r, 2500));
  expect(local.stats('web').environmentsAlive).toBe(0);
});

test('a cold start is a real INIT: the first answer reports it, the next one does not', async () => {
  const ping = () => invoke('slow', { warmWeb: { v: 1, round: 'r3', expected: 1, holdUntilMs: Date.now() } });
  const cold = await ping();
  const warm = await ping();
  expect(cold.body.warmWeb.coldStart).toBe(true);
  expect(cold.body.warmWeb.initDurationMs).toBeGreaterThanOrEqual(300);
  expect(warm.body.warmWeb.coldStart).toBe(false);
  expect(warm.body.warmWeb.environmentId).toBe(cold.body.warmWeb.environmentId);
});

test('an INIT failure is a function error naming the cause, as Lambda reports it', async () => {
  const { out, body } = await invoke('broken', httpEvent('/'));
  expect(out.FunctionError).toBe('Unhandled');
  expect(body.errorType).toBe('Runtime.InitError');
  expect(body.errorMessage).toMatch(/database unreachable during INIT/);
});

test('Node environments run the bundled Node shim', async () => {
  const { body } = await invoke('listener', httpEvent('/node'));
  expect(body.statusCode).toBe(200);
  expect(body.body).toMatch(/^pid \d+$/);
});

test('a DryRun invoke is checked, not run: 204, no invocation, no environment started', async () => {
  const before = local.stats('web');
  const out = await client.send(new InvokeCommand({ FunctionName: local.aliasArn('web'), InvocationType: 'DryRun' }));
  expect(out.StatusCode).toBe(204);
  expect(local.stats('web')).toEqual(before);
  await expect(client.send(new InvokeCommand({ FunctionName: 'nope', InvocationType: 'DryRun' }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
});

test('unknown functions and malformed payloads get Lambda\'s errors', async () => {
  await expect(invoke('nope', {})).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  const raw = await fetch(`${local.endpoint}/2015-03-31/functions/web/invocations`, { method: 'POST', body: '{not json' });
  expect(raw.status).toBe(400);
  expect(raw.headers.get('x-amzn-errortype')).toBe('InvalidRequestContentException');
});

test('the app saw only the HTTP requests, never a ping', () => {
  const paths = fs.readFileSync(requestLog, 'utf-8').trim().split('\n').map((l) => l.split(' ')[1]);
  expect(paths.sort()).toEqual(['/a', '/b', '/c', '/from-inside', '/hello', '/hello', '/hello', '/node', '/records']);
});
