// The origin secret: with WARM_WEB_ORIGIN_SECRET set, only HTTP events carrying the header CloudFront adds
// reach the app; the header itself never does. Driven through the real shim and a recording listener.
import { eventFor, type Json, lambdaContext, type RequestSpec, SHAPES } from './support/events';
import { FIXTURES, loadFixture } from './support/fixtures';
import { refuseForeignOrigin } from '../../../runtime/node/origin';
import { createShim, type Shim } from '../../../runtime/node/shim';

interface Seen { readonly method: string; readonly url: string; readonly headers: Record<string, string | string[]> }
const seen = (): Seen[] => loadFixture<{ seen: Seen[] }>('recording-listener.js').seen;

const SECRET = 'Zq8sV0cRk2mW7tYp4LxN9bHf3JdG6aEu';
const FORM: RequestSpec = {
  method: 'POST',
  path: '/contact/',
  headers: [['host', 'abc.lambda-url.eu-west-1.on.aws'], ['content-type', 'application/x-www-form-urlencoded'],
    ['x-forwarded-host', 'www.example.com'], ['origin', 'https://www.example.com']],
  body: Buffer.from('name=Ada&csrfmiddlewaretoken=t0k3n'),
};

function withOrigin(spec: RequestSpec, value: string, name = 'x-warm-web-origin'): RequestSpec {
  return { ...spec, headers: [...spec.headers ?? [], [name, value]] };
}

let shim: Shim;
beforeAll(async () => {
  shim = createShim({ app: 'recording-listener.listener', kind: 'listener', taskRoot: FIXTURES, functionName: 'test-fn' });
  await shim.ready;
});

beforeEach(() => {
  process.env.WARM_WEB_ORIGIN_SECRET = SECRET;
  jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
});

afterEach(() => {
  delete process.env.WARM_WEB_ORIGIN_SECRET;
  jest.restoreAllMocks();
});

describe.each(SHAPES)('%s event with WARM_WEB_ORIGIN_SECRET set', (shape) => {
  test('without the header: 403, the app is not called', async () => {
    const before = seen().length;
    const result = await shim.handler(eventFor(shape, FORM), lambdaContext()) as Json;
    expect(result.statusCode).toBe(403);
    expect(result.body).toBe('Forbidden');
    expect(seen()).toHaveLength(before);
  });

  test('with a wrong value, a prefix of the secret or the secret twice: 403, the app is not called', async () => {
    const before = seen().length;
    for (const value of ['wrong', SECRET.slice(0, -1), `${SECRET}x`, '']) {
      const result = await shim.handler(eventFor(shape, withOrigin(FORM, value)), lambdaContext()) as Json;
      expect(result.statusCode).toBe(403);
    }
    if (shape !== 'alb-single') { // a single-value ALB event keeps only the last copy of a header
      const twice = withOrigin(withOrigin(FORM, SECRET), SECRET);
      expect((await shim.handler(eventFor(shape, twice), lambdaContext()) as Json).statusCode).toBe(403);
    }
    expect(seen()).toHaveLength(before);
  });

  test('with the right value (any case of the name): the app answers the POST and never sees the header', async () => {
    const before = seen().length;
    const result = await shim.handler(eventFor(shape, withOrigin(FORM, SECRET, 'X-Warm-Web-Origin')), lambdaContext()) as Json;
    expect(result.statusCode).toBe(200);
    expect(result.body).toBe(`seen ${before + 1}`);
    const request = seen()[before];
    expect(request.method).toBe('POST');
    expect(request.headers['x-warm-web-origin']).toBeUndefined();
    expect(request.headers['x-forwarded-host']).toBe('www.example.com');
    expect(request.headers.origin).toBe('https://www.example.com');
  });
});

test('an ALB multi-value event is refused in its own response shape', () => {
  const result = refuseForeignOrigin(eventFor('alb-multi', FORM), SECRET) as Json;
  expect(result).toEqual({
    statusCode: 403,
    statusDescription: '403 Forbidden',
    multiValueHeaders: { 'content-type': ['text/plain; charset=utf-8'] },
    body: 'Forbidden',
    isBase64Encoded: false,
  });
});

test('warm pings and events that are not HTTP requests are not checked', async () => {
  const ping = await shim.handler({ warmWeb: { v: 1, round: 'r1', expected: 1, holdUntilMs: 0 } }, lambdaContext()) as Json;
  expect(ping.warmWeb).toBeDefined();
  const sqs = { Records: [{ eventSource: 'aws:sqs', body: 'x' }] };
  expect(refuseForeignOrigin(sqs, SECRET)).toBeUndefined();
  expect(refuseForeignOrigin({ warmWebCommand: { v: 1, kind: 'django', args: ['migrate'] } }, SECRET)).toBeUndefined();
});

test('a plain handler behind the distribution is guarded too', async () => {
  const handlerShim = createShim({ app: 'cjs-handler.handler', kind: 'handler', taskRoot: FIXTURES, functionName: 'test-fn' });
  await handlerShim.ready;
  const refused = await handlerShim.handler(eventFor('url', FORM), lambdaContext()) as Json;
  expect(refused.statusCode).toBe(403);
  const served = await handlerShim.handler(eventFor('url', withOrigin(FORM, SECRET)), lambdaContext()) as { kind: string; event: Json };
  expect(served.kind).toBe('cjs');
  expect(served.event.headers).not.toHaveProperty('x-warm-web-origin');
});

test('without WARM_WEB_ORIGIN_SECRET every HTTP event reaches the app, the header included', async () => {
  delete process.env.WARM_WEB_ORIGIN_SECRET;
  const before = seen().length;
  const result = await shim.handler(eventFor('url', withOrigin(FORM, 'anything')), lambdaContext()) as Json;
  expect(result.statusCode).toBe(200);
  expect(seen()[before].headers['x-warm-web-origin']).toBe('anything');
});
