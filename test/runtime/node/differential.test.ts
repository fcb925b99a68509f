// The same requests through the shim (as each integration's event) and over real HTTP to the same
// Express app must look the same to a client: status, app-set headers, cookies and body bytes.
import { createHash, randomBytes } from 'crypto';
import type { Server } from 'http';
import { eventFor, type Json, lambdaContext, type RequestSpec, type Shape, SHAPES } from './support/events';
import { FIXTURES, loadFixture } from './support/fixtures';
import { type Observed, observeLambda, sendOverHttp, startServer } from './support/http';
import { createShim, type Shim } from '../../../runtime/node/shim';

const HOST: readonly [string, string] = ['host', 'example.test'];

interface Case {
  readonly name: string;
  readonly spec: RequestSpec;
  /** Checks the HTTP reference, so a case cannot pass by both sides being equally wrong. */
  readonly reference: (observed: Observed) => void;
  /** Shapes that cannot carry this request or response faithfully (asserted separately). */
  readonly skip?: readonly Shape[];
}

const bodyText = (observed: Observed): string => observed.body.toString('utf8');
const binaryBody = randomBytes(4096);
const largeBody = randomBytes(1536 * 1024);

const CASES: readonly Case[] = [
  {
    name: 'GET with JSON response',
    spec: { method: 'GET', path: '/hello', headers: [HOST, ['accept', 'application/json']] },
    reference: (o) => expect(JSON.parse(bodyText(o))).toEqual({ hello: 'world' }),
  },
  {
    name: 'repeated query parameters',
    spec: { method: 'GET', path: '/echo', query: 'a=1&a=2&b=x&empty=', headers: [HOST] },
    reference: (o) => expect(JSON.parse(bodyText(o)).query).toEqual({ a: ['1', '2'], b: 'x', empty: '' }),
    // A single-value ALB target group sends only the last of repeated parameters.
    skip: ['alb-single'],
  },
  {
    name: 'percent-encoded and non-ASCII path and query',
    spec: { method: 'GET', path: '/path/caf%C3%A9%20%E2%9C%93', query: 'q=%E2%9C%93%20ok&name=J%C3%BCrgen&amp=a%26b', headers: [HOST] },
    reference: (o) => expect(JSON.parse(bodyText(o)).segment).toBe('café ✓'),
  },
  {
    // HTTP APIs hand rawPath over decoded once: decoding it again would give 'a b%'.
    name: 'an encoded % in the path is decoded once',
    spec: { method: 'GET', path: '/path/a%2520b%25', headers: [HOST] },
    reference: (o) => expect(JSON.parse(bodyText(o)).segment).toBe('a%20b%'),
  },
  {
    name: 'percent-encoded query seen raw',
    spec: { method: 'GET', path: '/echo', query: 'q=%E2%9C%93%20ok&name=J%C3%BCrgen&amp=a%26b', headers: [HOST] },
    reference: (o) => expect(JSON.parse(bodyText(o)).query).toEqual({ q: '✓ ok', name: 'Jürgen', amp: 'a&b' }),
  },
  {
    name: 'JSON POST',
    spec: {
      method: 'POST',
      path: '/json',
      headers: [HOST, ['content-type', 'application/json']],
      body: Buffer.from(JSON.stringify({ list: [1, 2, 3], text: 'grüße ✓', nested: { ok: true } })),
    },
    reference: (o) => {
      expect(o.status).toBe(201);
      expect(JSON.parse(bodyText(o)).received.text).toBe('grüße ✓');
    },
  },
  {
    name: 'form POST',
    spec: {
      method: 'POST',
      path: '/form',
      headers: [HOST, ['content-type', 'application/x-www-form-urlencoded']],
      body: Buffer.from('name=J%C3%BCrgen&tags=a&tags=b&note=two+words'),
    },
    reference: (o) => expect(JSON.parse(bodyText(o)).received).toEqual({ name: 'Jürgen', tags: ['a', 'b'], note: 'two words' }),
  },
  {
    name: 'binary request body (base64) echoed',
    spec: { method: 'POST', path: '/binary', headers: [HOST, ['content-type', 'application/octet-stream']], body: binaryBody, binary: true },
    reference: (o) => expect(o.body.equals(binaryBody)).toBe(true),
  },
  {
    name: 'binary response bytes',
    spec: { method: 'GET', path: '/bytes', headers: [HOST] },
    reference: (o) => expect([...o.body]).toEqual([0x00, 0xff, 0x10, 0x80, 0xfe, 0x00]),
  },
  {
    name: 'non-ASCII UTF-8 text',
    spec: { method: 'GET', path: '/unicode', headers: [HOST] },
    reference: (o) => expect(bodyText(o)).toBe('héllo wörld ✓ 日本語 🚀'),
  },
  {
    name: 'HEAD',
    spec: { method: 'HEAD', path: '/hello', headers: [HOST] },
    reference: (o) => {
      expect(o.body.length).toBe(0);
      expect(o.headers['content-length']).toBe('17');
    },
  },
  {
    name: 'redirect',
    spec: { method: 'GET', path: '/redirect', headers: [HOST, ['accept', 'text/plain']] },
    reference: (o) => {
      expect(o.status).toBe(302);
      expect(o.headers.location).toBe('/hello?from=redirect');
    },
  },
  {
    name: '404',
    spec: { method: 'GET', path: '/no/such/route', headers: [HOST] },
    reference: (o) => expect(o.status).toBe(404),
  },
  {
    name: 'request cookies and multiple Set-Cookie',
    spec: { method: 'GET', path: '/cookies', headers: [HOST, ['cookie', 'session=abc; theme=dark']] },
    reference: (o) => {
      expect(JSON.parse(bodyText(o)).cookie).toBe('session=abc; theme=dark');
      expect(o.cookies).toHaveLength(2);
      expect(o.headers['x-multi']).toBe('one, two');
    },
    // Single-value ALB responses carry one Set-Cookie (asserted below).
    skip: ['alb-single'],
  },
  {
    name: '1 MB+ response body',
    spec: { method: 'GET', path: '/large', headers: [HOST] },
    reference: (o) => expect(o.body.length).toBe(1024 * 1024 + 7),
  },
  {
    name: '1.5 MB binary request body',
    spec: { method: 'POST', path: '/binary', headers: [HOST, ['content-type', 'application/octet-stream']], body: largeBody, binary: true },
    reference: (o) => expect(o.body.equals(largeBody)).toBe(true),
  },
  {
    name: 'streamed with res.write in several chunks',
    spec: { method: 'GET', path: '/stream', headers: [HOST] },
    reference: (o) => {
      expect(bodyText(o)).toBe('first,second,third,end');
      expect(o.headers['content-length']).toBeUndefined();
    },
  },
  {
    name: 'error in an Express route',
    spec: { method: 'GET', path: '/fail', headers: [HOST] },
    reference: (o) => expect([o.status, bodyText(o)]).toEqual([500, 'app error: boom from the app']),
  },
];

const digest = (body: Buffer): string => `${body.length}:${createHash('sha256').update(body).digest('hex')}`;

let shim: Shim;
let server: Server;
let port: number;

beforeAll(async () => {
  const { app } = loadFixture<{ app: (req: unknown, res: unknown) => void }>('express-app.js');
  ({ server, port } = await startServer(app));
  shim = createShim({ app: 'express-app.app', kind: 'listener', taskRoot: FIXTURES, functionName: 'test-fn' });
  // The first invoke writes the cold-start metrics line; that is tested elsewhere.
  const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  await shim.handler(eventFor('http', { method: 'GET', path: '/hello', headers: [HOST] }), lambdaContext());
  write.mockRestore();
});

afterAll(async () => {
  jest.restoreAllMocks();
  await new Promise((resolve) => server.close(resolve));
});

describe.each(CASES)('$name', ({ spec, reference, skip }) => {
  let expected: Observed;

  beforeAll(async () => {
    expected = await sendOverHttp(port, spec);
  });

  test('HTTP reference is as the app intends', () => {
    reference(expected);
  });

  test.each(SHAPES.filter((shape) => !skip?.includes(shape)))('%s event gives the same response as HTTP', async (shape) => {
    const result = await shim.handler(eventFor(shape, spec), lambdaContext());
    const observed = observeLambda(shape, result);
    expect(observed.status).toBe(expected.status);
    expect(observed.headers).toEqual(expected.headers);
    expect(observed.cookies).toEqual(expected.cookies);
    expect(digest(observed.body)).toBe(digest(expected.body));
  });
});

describe('response formats', () => {
  const cookies: RequestSpec = { method: 'GET', path: '/cookies', headers: [HOST, ['cookie', 'session=abc']] };

  test('HTTP API v2 puts each Set-Cookie in cookies, not in headers', async () => {
    const result = await shim.handler(eventFor('http', cookies), lambdaContext()) as Json;
    expect(result.cookies).toEqual([
      'a=1; Path=/; HttpOnly',
      'b=2; Path=/x; Expires=Tue, 01 Jan 2030 00:00:00 GMT',
    ]);
    expect(Object.keys(result.headers as Json)).not.toContain('set-cookie');
    expect((result.headers as Json)['x-multi']).toBe('one, two');
  });

  test('REST v1 returns multiValueHeaders with every Set-Cookie', async () => {
    const result = await shim.handler(eventFor('rest', cookies), lambdaContext()) as Json;
    expect(result).not.toHaveProperty('headers');
    expect((result.multiValueHeaders as Json)['set-cookie']).toHaveLength(2);
    expect((result.multiValueHeaders as Json)['x-multi']).toEqual(['one', 'two']);
  });

  test('single-value ALB gets one value per header, the last Set-Cookie, and a status description', async () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    const result = await shim.handler(eventFor('alb-single', cookies), lambdaContext()) as Json;
    expect(result.statusDescription).toBe('200 OK');
    expect(result).not.toHaveProperty('multiValueHeaders');
    expect((result.headers as Json)['set-cookie']).toBe('b=2; Path=/x; Expires=Tue, 01 Jan 2030 00:00:00 GMT');
    expect((result.headers as Json)['x-multi']).toBe('one, two');
    expect(warn).toHaveBeenCalledTimes(1);
  });

  test('multi-value ALB answers in multiValueHeaders', async () => {
    const result = await shim.handler(eventFor('alb-multi', { method: 'GET', path: '/no/such/route', headers: [HOST] }), lambdaContext()) as Json;
    expect(result.statusDescription).toBe('404 Not Found');
    expect((result.multiValueHeaders as Json)['content-type']).toEqual(['text/html; charset=utf-8']);
  });

  test('binary bodies are base64 with isBase64Encoded, text bodies are not', async () => {
    const binary = await shim.handler(eventFor('url', { method: 'GET', path: '/bytes', headers: [HOST] }), lambdaContext()) as Json;
    expect(binary).toMatchObject({ isBase64Encoded: true, body: Buffer.from([0x00, 0xff, 0x10, 0x80, 0xfe, 0x00]).toString('base64') });
    const text = await shim.handler(eventFor('url', { method: 'GET', path: '/unicode', headers: [HOST] }), lambdaContext()) as Json;
    expect(text).toMatchObject({ isBase64Encoded: false, body: 'héllo wörld ✓ 日本語 🚀' });
  });
});

describe('what the app sees of the event', () => {
  // The client forges its own X-Forwarded-For entry; the integration appends (ALB) or reports (API Gateway) the real one.
  const client = (shape: Shape, proto: string): Promise<Json> => shim.handler(eventFor(shape, {
    method: 'GET', path: '/client', headers: [HOST, ['x-forwarded-proto', proto], ['x-forwarded-for', '192.0.2.66']], sourceIp: '203.0.113.9',
  }), lambdaContext()).then((result) => JSON.parse((result as Json).body as string) as Json);

  test.each(SHAPES)('%s: req.ip is the client address, not a forged X-Forwarded-For; req.protocol follows X-Forwarded-Proto', async (shape) => {
    expect(await client(shape, 'https')).toEqual({ ip: '203.0.113.9', protocol: 'https', secure: true, hostname: 'example.test' });
    if (shape !== 'alb-multi' && shape !== 'alb-single') {
      expect(await client(shape, 'http')).toMatchObject({ ip: '203.0.113.9', protocol: 'http', secure: false });
    }
  });

  test('REST stage prefix is removed from req.url and exposed as req.aws.basePath', async () => {
    const event = eventFor('rest', { method: 'GET', path: '/aws', query: 'x=1', headers: [HOST] });
    const context = lambdaContext({ awsRequestId: 'rest-42' });
    const seen = JSON.parse((await shim.handler(event, context) as Json).body as string);
    expect(seen).toEqual({ hasEvent: true, requestId: 'rest-42', basePath: '/prod', url: '/aws?x=1', originalUrl: '/aws?x=1' });
  });

  test('HTTP API named stage is removed the same way; $default has none', async () => {
    const staged = eventFor('http', { method: 'GET', path: '/prod/aws', headers: [HOST] });
    (staged.requestContext as Json).stage = 'prod';
    expect(JSON.parse((await shim.handler(staged, lambdaContext()) as Json).body as string)).toMatchObject({ basePath: '/prod', url: '/aws' });
    const unstaged = eventFor('url', { method: 'GET', path: '/aws', headers: [HOST] });
    expect(JSON.parse((await shim.handler(unstaged, lambdaContext()) as Json).body as string)).toMatchObject({ basePath: '', url: '/aws' });
  });

  test('req.aws carries the very event and context objects', async () => {
    const { app } = loadFixture<{ app: { get: (route: string, handler: (req: { aws: unknown }, res: { json: (body: unknown) => void }) => void) => void } }>('express-app.js');
    let seen: unknown;
    app.get('/capture-aws', (req, res) => {
      seen = req.aws;
      res.json({});
    });
    const event = eventFor('url', { method: 'GET', path: '/capture-aws', headers: [HOST] });
    const context = lambdaContext();
    await shim.handler(event, context);
    expect(seen).toMatchObject({ basePath: '' });
    expect((seen as Json).event).toBe(event);
    expect((seen as Json).context).toBe(context);
  });
});
