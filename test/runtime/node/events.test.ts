// Event recognition and response formatting, rule by rule (the differential tests cover whole requests).
import { eventFor, type Json, restEvent, vectorEvent } from './support/events';
import { FIXTURES } from './support/fixtures';
import {
  encodeDecodedPath, encodePath, formatResponse, type HttpRequest, type HttpResponse, INVALID_BASE64_BODY, recogniseEvent, type RecogniseOptions,
} from '../../../runtime/node/events';
import { basePathFrom, createShim } from '../../../runtime/node/shim';

/** The request a recognised, servable event carries (fails the test otherwise). */
function requestOf(event: unknown, options?: RecogniseOptions): HttpRequest {
  const recognised = recogniseEvent(event, options);
  if (recognised === undefined || !('request' in recognised)) {
    throw new Error(`not a servable event: ${JSON.stringify(recognised)}`);
  }
  return recognised.request;
}

function response(fields: Partial<HttpResponse>): HttpResponse {
  return { statusCode: 200, statusMessage: 'OK', headers: {}, body: Buffer.alloc(0), ...fields };
}

// A path that may be encoded already (REST, Function URL, ALB) and one known to be decoded (HTTP API rawPath).
describe('encodePath / encodeDecodedPath', () => {
  test.each([
    ['/plain/path', '/plain/path', '/plain/path'],
    ['/caf%C3%A9', '/caf%C3%A9', '/caf%25C3%25A9'],
    ['/café', '/caf%C3%A9', '/caf%C3%A9'],
    ['/a b', '/a%20b', '/a%20b'],
    ['/100%', '/100%25', '/100%25'],
    ['/a%20b/100%', '/a%20b/100%25', '/a%2520b/100%25'],
    ['/%zz', '/%25zz', '/%25zz'],
    ['/what?#', '/what%3F%23', '/what%3F%23'],
    ['/keep:@!$&\'()*+,;=-._~', '/keep:@!$&\'()*+,;=-._~', '/keep:@!$&\'()*+,;=-._~'],
    ['/🚀', '/%F0%9F%9A%80', '/%F0%9F%9A%80'],
  ])('%s -> %s (encoded) or %s (decoded)', (input, encoded, decoded) => {
    expect([encodePath(input), encodeDecodedPath(input)]).toEqual([encoded, decoded]);
  });
});

describe('base path', () => {
  const custom = (path: string, resource: string, pathParameters: Json | null): Json => {
    const event = vectorEvent('rest-custom-domain-base-path');
    (event.requestContext as Json).path = path;
    return { ...event, path, resource, pathParameters };
  };

  test('REST on a custom domain: what is in front of the matched resource is the base path', () => {
    expect(requestOf(custom('/shop/v1/items/42', '/items/{id}', { id: '42' }))).toMatchObject({ url: '/items/42', basePath: '/shop/v1' });
    expect(requestOf(custom('/api', '/', null))).toMatchObject({ url: '/', basePath: '/api' });
    expect(requestOf(custom('/api/', '/', null))).toMatchObject({ url: '/', basePath: '/api' });
    // No mapping, or a resource that matched the whole path: no base path.
    expect(requestOf(custom('/items/42', '/items/{id}', { id: '42' }))).toMatchObject({ url: '/items/42', basePath: '' });
    expect(requestOf(custom('/a/b', '/{proxy+}', { proxy: 'a/b' }))).toMatchObject({ url: '/a/b', basePath: '' });
    // Path parameters arrive decoded: an encoded / in the path is a segment of the parameter.
    expect(requestOf(custom('/api/a%2Fb', '/{proxy+}', { proxy: 'a/b' }))).toMatchObject({ url: '/a%2Fb', basePath: '/api' });
    expect(requestOf(custom('/a%2Fb', '/{proxy+}', { proxy: 'a/b' }))).toMatchObject({ url: '/a%2Fb', basePath: '' });
  });

  test('an explicit base path is taken off whole segments only, after the stage', () => {
    const options = { basePath: '/v1' };
    expect(requestOf(restEvent({ method: 'GET', path: '/v1/x' }), options)).toMatchObject({ url: '/x', basePath: '/prod/v1' });
    expect(requestOf(restEvent({ method: 'GET', path: '/v1' }), options)).toMatchObject({ url: '/', basePath: '/prod/v1' });
    expect(requestOf(restEvent({ method: 'GET', path: '/v1x/y' }), options)).toMatchObject({ url: '/v1x/y', basePath: '/prod' });
    const staged = eventFor('http', { method: 'GET', path: '/live/v1/x' });
    (staged.requestContext as Json).stage = 'live';
    expect(requestOf(staged, options)).toMatchObject({ url: '/x', basePath: '/live/v1' });
    expect(requestOf(eventFor('alb-multi', { method: 'GET', path: '/v1/a%20b' }), options)).toMatchObject({ url: '/a%20b', basePath: '/v1' });
    expect(requestOf(eventFor('url', { method: 'GET', path: '/v2/x' }), options)).toMatchObject({ url: '/v2/x', basePath: '' });
  });

  test.each([
    ['api', 'no leading /'],
    ['/api/', 'trailing /'],
    ['/a//b', 'empty segment'],
    ['/api?x', '?'],
    ['/', 'just /'],
  ])('WARM_WEB_BASE_PATH=%s is refused (%s), naming the variable and the value', (value) => {
    expect(() => basePathFrom(value)).toThrow(`warm-web: WARM_WEB_BASE_PATH=${JSON.stringify(value)} is not a base path`);
  });

  test('a bad WARM_WEB_BASE_PATH fails INIT before the app is loaded', () => {
    process.env.WARM_WEB_BASE_PATH = '/api/';
    try {
      expect(() => createShim({ app: 'recording-listener.listener', kind: 'listener', taskRoot: FIXTURES }))
        .toThrow('warm-web: WARM_WEB_BASE_PATH="/api/" is not a base path');
    } finally {
      delete process.env.WARM_WEB_BASE_PATH;
    }
  });

  test('WARM_WEB_BASE_PATH unset or empty is no base path', () => {
    expect([basePathFrom(undefined), basePathFrom(''), basePathFrom('/shop/v1')]).toEqual([undefined, undefined, '/shop/v1']);
  });
});

describe('recogniseEvent', () => {
  test('REST base path comes from requestContext.path minus path', () => {
    const custom = restEvent({ method: 'GET', path: '/users' });
    (custom.requestContext as Json).path = '/api/v1/users';
    expect(requestOf(custom)).toMatchObject({ url: '/users', basePath: '/api/v1' });

    const root = restEvent({ method: 'GET', path: '/' });
    (root.requestContext as Json).path = '/prod';
    expect(requestOf(root)).toMatchObject({ url: '/', basePath: '/prod' });

    const none = restEvent({ method: 'GET', path: '/users' });
    (none.requestContext as Json).path = '/users';
    expect(requestOf(none)).toMatchObject({ url: '/users', basePath: '' });
  });

  test('an HTTP API payload format 1.0 event is handled as REST', () => {
    expect(recogniseEvent({ ...restEvent({ method: 'GET', path: '/x' }), version: '1.0' })?.shape).toBe('rest');
  });

  test('repeated request headers merge as Node merges them', () => {
    const request = requestOf(restEvent({
      method: 'GET',
      path: '/',
      headers: [['Cookie', 'a=1'], ['Cookie', 'b=2'], ['Content-Type', 'text/plain'], ['Content-Type', 'text/html'], ['X-Thing', '1'], ['X-Thing', '2']],
    }))!;
    expect(request.headers).toMatchObject({ 'cookie': 'a=1; b=2', 'content-type': 'text/plain', 'x-thing': '1, 2' });
    expect(request.rawHeaders.slice(0, 4)).toEqual(['Cookie', 'a=1', 'Cookie', 'b=2']);
  });

  test('Content-Length comes from the decoded body; Transfer-Encoding is dropped', () => {
    const text = requestOf(restEvent({ method: 'POST', path: '/', headers: [['Transfer-Encoding', 'chunked']], body: Buffer.from('ü€') }));
    expect(text.headers['content-length']).toBe('5');
    expect(text.headers).not.toHaveProperty('transfer-encoding');
    // The REST event has no Host header: requestContext.domainName stands in for it.
    expect(text.rawHeaders).toEqual(['content-length', '5', 'host', 'abc123.execute-api.eu-west-1.amazonaws.com']);
    const binary = requestOf(eventFor('url', { method: 'POST', path: '/', body: Buffer.from([0, 255, 1]), binary: true }));
    expect(binary.headers['content-length']).toBe('3');
    expect([...binary.body]).toEqual([0, 255, 1]);
    const empty = requestOf(eventFor('url', { method: 'GET', path: '/' }));
    expect(empty.headers).not.toHaveProperty('content-length');
  });

  test('v2 cookies join any Cookie header', () => {
    const event = eventFor('http', { method: 'GET', path: '/', headers: [['cookie', 'a=1; b=2']] });
    (event.headers as Json).cookie = 'z=0';
    expect(requestOf(event).headers.cookie).toBe('z=0; a=1; b=2');
  });

  test('client address falls back to the last X-Forwarded-For entry, the one the proxy added; scheme defaults to https', () => {
    const event = eventFor('url', { method: 'GET', path: '/', headers: [['x-forwarded-for', '192.0.2.1, 10.0.0.1']] });
    delete ((event.requestContext as Json).http as Json).sourceIp;
    expect(requestOf(event)).toMatchObject({ sourceIp: '10.0.0.1', scheme: 'https' });
  });

  test.each([
    ['203.0.113.7', '203.0.113.7'],
    ['198.51.100.1, 203.0.113.7:4444', '203.0.113.7'],
    ['2001:db8::7', '2001:db8::7'],
    ['[2001:db8::7]:4444', '2001:db8::7'],
  ])('ALB X-Forwarded-For %s gives client %s', (xff, client) => {
    const event = eventFor('alb-single', { method: 'GET', path: '/' });
    (event.headers as Json)['x-forwarded-for'] = xff;
    expect(requestOf(event).sourceIp).toBe(client);
  });

  test('no Host header: requestContext.domainName is the host, else localhost; a Host header is kept', () => {
    const bare = eventFor('http', { method: 'GET', path: '/' });
    expect(requestOf(bare).headers.host).toBe('abc123.execute-api.eu-west-1.amazonaws.com');
    const hosted = eventFor('http', { method: 'GET', path: '/', headers: [['host', 'example.test']] });
    expect(requestOf(hosted).headers.host).toBe('example.test');
    delete (bare.requestContext as Json).domainName;
    expect(requestOf(bare).headers.host).toBe('localhost');
  });

  test('HTTP API rawPath is decoded once by AWS and encoded again; a Function URL path is kept', () => {
    const http = eventFor('http', { method: 'GET', path: '/' });
    http.rawPath = '/files/a%20b/100%';
    expect(requestOf(http).url).toBe('/files/a%2520b/100%25');
    // Priming's events pose as HTTP API on localhost.
    (http.requestContext as Json).domainName = 'localhost';
    expect(requestOf(http).url).toBe('/files/a%2520b/100%25');
    const url = eventFor('url', { method: 'GET', path: '/files/a%2520b/100%25' });
    expect(requestOf(url).url).toBe('/files/a%2520b/100%25');
  });

  test.each([
    ['', true],
    ['AAEC', true],
    ['AA==', true],
    ['AAE=', true],
    ['AAE', false],
    ['AA=A', false],
    ['A===', false],
    ['AA\nEC', false],
    ['AA E', false],
    ['AAA!', false],
    ['=AAA', false],
    ['-_8=', false],
    ['QR==', true],
  ])('a body marked base64 %j is valid: %s', (body, valid) => {
    const event = { ...eventFor('url', { method: 'POST', path: '/' }), body, isBase64Encoded: true };
    expect(recogniseEvent(event)).toEqual(valid ? expect.objectContaining({ request: expect.any(Object) }) : { shape: 'http', invalid: INVALID_BASE64_BODY });
  });

  test('ALB query values stay as sent; REST values are re-encoded', () => {
    const spec = { method: 'GET', path: '/', query: 'q=a%20b%2Bc&x=%E2%9C%93' };
    expect(requestOf(eventFor('alb-multi', spec)).url).toBe('/?q=a%20b%2Bc&x=%E2%9C%93');
    expect(requestOf(eventFor('rest', spec)).url).toBe('/?q=a%20b%2Bc&x=%E2%9C%93');
  });

  test.each([
    ['no requestContext', { httpMethod: 'GET', path: '/' }],
    ['a v1-looking event without a method', { requestContext: { stage: 'prod' }, path: '/' }],
    ['an array', [1, 2]],
  ])('%s is not recognised', (_name, event) => {
    expect(recogniseEvent(event)).toBeUndefined();
  });
});

describe('formatResponse', () => {
  test('a compressed body is base64 even when it happens to be valid UTF-8', () => {
    const result = formatResponse('http', response({ headers: { 'content-encoding': 'gzip' }, body: Buffer.from('abc') }), false);
    expect(result).toMatchObject({ body: Buffer.from('abc').toString('base64'), isBase64Encoded: true });
  });

  test('invalid UTF-8 is base64, valid UTF-8 is text', () => {
    expect(formatResponse('rest', response({ body: Buffer.from([0xc3, 0x28]) }), false)).toMatchObject({ body: 'wyg=', isBase64Encoded: true });
    expect(formatResponse('rest', response({ body: Buffer.from('✓') }), false)).toMatchObject({ body: '✓', isBase64Encoded: false });
  });

  test('HEAD answers have an empty body', () => {
    expect(formatResponse('http', response({ body: Buffer.from('ignored') }), true)).toMatchObject({ body: '', isBase64Encoded: false });
  });

  test('hop-by-hop headers are dropped and numbers become strings', () => {
    const result = formatResponse('http', response({ headers: { 'connection': 'close', 'transfer-encoding': 'chunked', 'content-length': 3, 'x-a': 'b' } }), false);
    expect(result).toEqual({ statusCode: 200, headers: { 'content-length': '3', 'x-a': 'b' }, cookies: [], body: '', isBase64Encoded: false });
  });
});
