// Every conformance vector in test/vectors/ (the same files the Python suite reads) through the Node shim.
// Request vectors that carry the client's request are also sent to http.createServer on loopback with
// the same listener: what the app sees through the shim must be what it sees behind a real server.
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { type Json, lambdaContext, type Shape, SHAPES } from './support/events';
import { createShim, type Shim } from '../../../runtime/node/shim';

const VECTORS = path.join(__dirname, '..', '..', 'vectors');

interface RequestVector {
  readonly name: string;
  readonly source: Shape;
  readonly env?: Record<string, string>;
  /** `expect` fields a plain server is not held to (the source cannot pass on what the client sent). */
  readonly serverDiffers?: string[];
  readonly event: Json;
  readonly client?: { readonly method: string; readonly target: string; readonly headers: Array<[string, string]>; readonly bodyBase64: string };
  readonly expect: Json;
}

interface AppResponse {
  readonly status: number;
  readonly headers: Array<[string, string]>;
  readonly bodyBase64?: string;
  readonly chunksBase64?: string[];
}

interface ResponseVector {
  readonly name: string;
  readonly request: { readonly method: string };
  readonly app: AppResponse;
  readonly expect: Partial<Record<Shape, Json>>;
}

interface ErrorVector {
  readonly name: string;
  readonly event: unknown;
  readonly expect: Json;
  readonly appCalled?: boolean;
  readonly logLines?: number;
}

function vectors<T>(kind: 'requests' | 'responses' | 'errors'): T[] {
  const dir = path.join(VECTORS, kind);
  return fs.readdirSync(dir).filter((file) => file.endsWith('.json')).sort()
    .map((file) => JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as T);
}

const REQUESTS = vectors<RequestVector>('requests');
const RESPONSES = vectors<ResponseVector>('responses');
const ERRORS = vectors<ErrorVector>('errors');

// The app, a plain request listener in a module file of its own, so the shim loads it as it loads any
// app. It answers with what it saw, or with the response a test asked for.
const APP_SOURCE = `'use strict';
let response = null;
let calls = 0;
exports.respondWith = (spec) => { response = spec; };
exports.calls = () => calls;
exports.listener = (req, res) => {
  calls += 1;
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    if (response) {
      res.statusCode = response.status;
      const grouped = new Map();
      for (const [name, value] of response.headers) grouped.set(name, (grouped.get(name) || []).concat(value));
      for (const [name, values] of grouped) res.setHeader(name, values.length === 1 ? values[0] : values);
      for (const chunk of response.chunksBase64 || []) res.write(Buffer.from(chunk, 'base64'));
      res.end(response.bodyBase64 ? Buffer.from(response.bodyBase64, 'base64') : undefined);
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({
      method: req.method,
      url: req.url,
      rawHeaders: req.rawHeaders,
      client: req.socket.remoteAddress,
      encrypted: Boolean(req.socket.encrypted),
      basePath: req.aws ? req.aws.basePath : null,
      bodyBase64: Buffer.concat(chunks).toString('base64'),
    }));
  });
};
`;

interface VectorApp {
  readonly listener: http.RequestListener;
  readonly respondWith: (spec: AppResponse | null) => void;
  readonly calls: () => number;
}

/** What the listener reported seeing. */
interface Seen {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly client: string;
  readonly encrypted: boolean;
  readonly basePath: string | null;
  readonly bodyBase64: string;
}

let appDir: string;
let app: VectorApp;
let server: http.Server;
let port: number;
const shims = new Map<string, Shim>();

/** One shim per WARM_WEB_BASE_PATH a vector asks for, each primed past its cold-start metrics line. */
async function shimFor(env: Record<string, string> = {}): Promise<Shim> {
  const unknown = Object.keys(env).filter((name) => name !== 'WARM_WEB_BASE_PATH');
  if (unknown.length) {
    throw new Error(`vector env ${unknown.join(', ')} is not supported by the Node suite`);
  }
  const basePath = env.WARM_WEB_BASE_PATH ?? '';
  let shim = shims.get(basePath);
  if (!shim) {
    // Through the environment, as on Lambda (the construct's basePath prop sets it).
    const before = process.env.WARM_WEB_BASE_PATH;
    process.env.WARM_WEB_BASE_PATH = basePath;
    try {
      shim = createShim({ app: 'vector-app.listener', kind: 'listener', taskRoot: appDir, functionName: 'vectors' });
    } finally {
      if (before === undefined) {
        delete process.env.WARM_WEB_BASE_PATH;
      } else {
        process.env.WARM_WEB_BASE_PATH = before;
      }
    }
    const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    await shim.handler({ warmWeb: { v: 1, round: 'r-prime', expected: 1, holdUntilMs: 0 } }, lambdaContext());
    write.mockRestore();
    shims.set(basePath, shim);
  }
  return shim;
}

beforeAll(async () => {
  appDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-vectors-'));
  const file = path.join(appDir, 'vector-app.js');
  fs.writeFileSync(file, APP_SOURCE);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  app = require(file) as VectorApp;
  server = http.createServer(app.listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  fs.rmSync(appDir, { recursive: true, force: true });
});

afterEach(() => {
  app.respondWith(null);
  jest.restoreAllMocks();
});

/** Percent-decoding as a server-side framework does it; malformed escapes stay as they are. */
function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function hostAndPort(host: string | undefined): [string | undefined, number | undefined] {
  if (host === undefined) {
    return [undefined, undefined];
  }
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(host);
  return match ? [match[1], match[2] === undefined ? undefined : Number(match[2])] : [host, undefined];
}

/** The fields of a vector's `expect`, as this listener saw them. */
function observed(seen: Seen): Json {
  const query = seen.url.indexOf('?');
  const rawPath = query < 0 ? seen.url : seen.url.slice(0, query);
  const queryString = query < 0 ? '' : seen.url.slice(query + 1);
  const queryParams: Record<string, string[]> = {};
  for (const [name, value] of new URLSearchParams(queryString)) {
    (queryParams[name] ??= []).push(value);
  }
  const headers: Array<[string, string]> = [];
  for (let i = 0; i < seen.rawHeaders.length; i += 2) {
    headers.push([seen.rawHeaders[i].toLowerCase(), seen.rawHeaders[i + 1]]);
  }
  const values = (name: string): string[] => headers.filter(([key]) => key === name).map(([, value]) => value);
  const cookies: Record<string, string> = {};
  for (const pair of values('cookie').join('; ').split(';')) {
    const eq = pair.indexOf('=');
    if (eq > 0) {
      cookies[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
    }
  }
  const scheme = seen.encrypted ? 'https' : 'http';
  const [host, hostPort] = hostAndPort(values('host')[0]);
  const forwardedPort = values('x-forwarded-port')[0];
  return {
    method: seen.method,
    scriptName: seen.basePath,
    path: decoded(rawPath),
    rawPath,
    query: queryString,
    queryParams,
    headers,
    cookies,
    bodyBase64: seen.bodyBase64,
    client: seen.client,
    scheme,
    host,
    port: hostPort ?? (forwardedPort === undefined ? (scheme === 'https' ? 443 : 80) : Number(forwardedPort)),
  };
}

/** Checks each field `expect` lists against what was seen; `fields` limits which may be checked. */
function checkSeen(seen: Json, expected: Json, fields: readonly string[]): void {
  const headers = seen.headers as Array<[string, string]>;
  for (const field of fields) {
    if (!(field in expected)) {
      continue;
    }
    if (field === 'headers') {
      // Only the names listed are checked: their values, as received, in order.
      const wanted = expected.headers as Array<[string, string]>;
      for (const name of new Set(wanted.map(([key]) => key))) {
        expect([name, headers.filter(([key]) => key === name).map(([, value]) => value)])
          .toEqual([name, wanted.filter(([key]) => key === name).map(([, value]) => value)]);
      }
    } else if (field === 'headersAbsent') {
      const names = new Set(headers.map(([key]) => key));
      expect((expected.headersAbsent as string[]).filter((name) => names.has(name))).toEqual([]);
    } else {
      expect([field, seen[field]]).toEqual([field, expected[field]]);
    }
  }
}

// remoteUser is a WSGI/ASGI notion: Node has no REMOTE_USER to check.
const SHIM_FIELDS = ['method', 'scriptName', 'path', 'rawPath', 'query', 'queryParams', 'headers', 'headersAbsent',
  'cookies', 'bodyBase64', 'client', 'scheme', 'host', 'port'];
// A loopback server sees 127.0.0.1 over plain HTTP and no stage: those fields are the integration's.
const SERVER_FIELDS = ['method', 'path', 'rawPath', 'query', 'queryParams', 'headers', 'headersAbsent', 'cookies', 'bodyBase64', 'host'];

function sendToServer(client: NonNullable<RequestVector['client']>): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: '127.0.0.1', port, method: client.method, path: client.target, headers: client.headers.flat(), setHost: false, agent: false,
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Seen));
    });
    request.on('error', reject);
    request.end(Buffer.from(client.bodyBase64, 'base64'));
  });
}

/**
 * The event a response vector is answered for (README): the source's `-basic` request vector, else its
 * first by name, with the method set and no body.
 */
function responseEvent(shape: Shape, method: string): Json {
  const vector = REQUESTS.find((candidate) => candidate.name === `${shape}-basic`) ?? REQUESTS.find((candidate) => candidate.source === shape);
  const event = structuredClone(vector!.event);
  if (shape === 'http' || shape === 'url') {
    ((event.requestContext as Json).http as Json).method = method;
    delete event.body;
  } else {
    event.httpMethod = method;
    event.body = shape === 'rest' ? null : '';
  }
  event.isBase64Encoded = false;
  return event;
}

/** Header maps with their names lower-cased: the README leaves a shim's spelling of them open. */
function comparable(key: string, value: unknown): unknown {
  if ((key === 'headers' || key === 'multiValueHeaders') && typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([name, values]) => [name.toLowerCase(), values]));
  }
  return value;
}

function bodyOf(result: Json): Buffer {
  const body = typeof result.body === 'string' ? result.body : '';
  return result.isBase64Encoded === true ? Buffer.from(body, 'base64') : Buffer.from(body, 'utf8');
}

test('there are vectors of every kind and every source', () => {
  expect(new Set(REQUESTS.map((vector) => vector.source))).toEqual(new Set(SHAPES));
  expect(RESPONSES.length).toBeGreaterThan(0);
  expect(ERRORS.length).toBeGreaterThan(0);
});

describe.each(REQUESTS.map((vector) => [vector.name, vector] as const))('request %s', (_name, vector) => {
  test('the app sees what the vector expects through the shim', async () => {
    const shim = await shimFor(vector.env);
    const result = await shim.handler(structuredClone(vector.event), lambdaContext()) as Json;
    expect(result.statusCode).toBe(200);
    checkSeen(observed(JSON.parse(bodyOf(result).toString('utf8')) as Seen), vector.expect, SHIM_FIELDS);
  });

  if (vector.client) {
    const client = vector.client;
    const fields = SERVER_FIELDS.filter((field) => !vector.serverDiffers?.includes(field));
    test('and the same behind http.createServer on loopback', async () => {
      checkSeen(observed(await sendToServer(client)), vector.expect, fields);
    });
  }
});

describe.each(RESPONSES.map((vector) => [vector.name, vector] as const))('response %s', (_name, vector) => {
  test.each(Object.keys(vector.expect) as Shape[])('%s answer', async (shape) => {
    const shim = await shimFor();
    // The once-per-environment warning about a single-value ALB's one Set-Cookie.
    jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    app.respondWith(vector.app);
    const result = await shim.handler(responseEvent(shape, vector.request.method), lambdaContext()) as Json;
    const expected = vector.expect[shape]!;
    for (const key of Object.keys(expected)) {
      const actual = key === 'bodyBase64' ? bodyOf(result).toString('base64') : comparable(key, result[key]);
      expect([key, actual]).toEqual([key, comparable(key, expected[key])]);
    }
  });
});

describe.each(ERRORS.map((vector) => [vector.name, vector] as const))('error %s', (_name, vector) => {
  test('gets the answer the vector expects', async () => {
    const shim = await shimFor();
    const levels = ['log', 'info', 'warn', 'error', 'debug'] as const;
    const spies = levels.map((level) => jest.spyOn(console, level).mockImplementation(() => undefined));
    const before = app.calls();
    const result = await shim.handler(structuredClone(vector.event), lambdaContext()) as Json;
    for (const key of Object.keys(vector.expect)) {
      expect([key, comparable(key, result[key])]).toEqual([key, comparable(key, vector.expect[key])]);
    }
    if (vector.appCalled === false) {
      expect(app.calls()).toBe(before);
    }
    const lines = spies.reduce((count, spy) => count + spy.mock.calls.length, 0);
    expect(lines).toBeLessThanOrEqual(vector.logLines ?? Infinity);
    if (vector.name.startsWith('not-http-')) {
      // Not the client's or the app's fault: nothing at warning or error level.
      expect(spies.slice(0, 4).map((spy) => spy.mock.calls.length)).toEqual([0, 0, 0, 0]);
    }
  });
});
