// Event recognition and response formatting, rule by rule (the differential tests cover whole requests).
import { eventFor, type Json, restEvent } from './support/events';
import { encodePath, formatResponse, type HttpResponse, recogniseEvent } from '../../lib/runtime/node/events';

function response(fields: Partial<HttpResponse>): HttpResponse {
  return { statusCode: 200, statusMessage: 'OK', headers: {}, body: Buffer.alloc(0), ...fields };
}

describe('encodePath', () => {
  test.each([
    ['/plain/path', '/plain/path'],
    ['/caf%C3%A9', '/caf%C3%A9'],
    ['/café', '/caf%C3%A9'],
    ['/a b', '/a%20b'],
    ['/100%', '/100%25'],
    ['/%zz', '/%25zz'],
    ['/what?#', '/what%3F%23'],
    ['/keep:@!$&\'()*+,;=-._~', '/keep:@!$&\'()*+,;=-._~'],
    ['/🚀', '/%F0%9F%9A%80'],
  ])('%s -> %s', (input, expected) => {
    expect(encodePath(input)).toBe(expected);
  });
});

describe('recogniseEvent', () => {
  test('REST base path comes from requestContext.path minus path', () => {
    const custom = restEvent({ method: 'GET', path: '/users' });
    (custom.requestContext as Json).path = '/api/v1/users';
    expect(recogniseEvent(custom)?.request).toMatchObject({ url: '/users', basePath: '/api/v1' });

    const root = restEvent({ method: 'GET', path: '/' });
    (root.requestContext as Json).path = '/prod';
    expect(recogniseEvent(root)?.request).toMatchObject({ url: '/', basePath: '/prod' });

    const none = restEvent({ method: 'GET', path: '/users' });
    (none.requestContext as Json).path = '/users';
    expect(recogniseEvent(none)?.request).toMatchObject({ url: '/users', basePath: '' });
  });

  test('an HTTP API payload format 1.0 event is handled as REST', () => {
    expect(recogniseEvent({ ...restEvent({ method: 'GET', path: '/x' }), version: '1.0' })?.shape).toBe('rest');
  });

  test('repeated request headers merge as Node merges them', () => {
    const { request } = recogniseEvent(restEvent({
      method: 'GET',
      path: '/',
      headers: [['Cookie', 'a=1'], ['Cookie', 'b=2'], ['Content-Type', 'text/plain'], ['Content-Type', 'text/html'], ['X-Thing', '1'], ['X-Thing', '2']],
    }))!;
    expect(request.headers).toMatchObject({ 'cookie': 'a=1; b=2', 'content-type': 'text/plain', 'x-thing': '1, 2' });
    expect(request.rawHeaders.slice(0, 4)).toEqual(['Cookie', 'a=1', 'Cookie', 'b=2']);
  });

  test('Content-Length comes from the decoded body; Transfer-Encoding is dropped', () => {
    const text = recogniseEvent(restEvent({ method: 'POST', path: '/', headers: [['Transfer-Encoding', 'chunked']], body: Buffer.from('ü€') }))!.request;
    expect(text.headers['content-length']).toBe('5');
    expect(text.headers).not.toHaveProperty('transfer-encoding');
    expect(text.rawHeaders).toEqual(['content-length', '5']);
    const binary = recogniseEvent(eventFor('url', { method: 'POST', path: '/', body: Buffer.from([0, 255, 1]), binary: true }))!.request;
    expect(binary.headers['content-length']).toBe('3');
    expect([...binary.body]).toEqual([0, 255, 1]);
    const empty = recogniseEvent(eventFor('url', { method: 'GET', path: '/' }))!.request;
    expect(empty.headers).not.toHaveProperty('content-length');
  });

  test('v2 cookies join any Cookie header', () => {
    const event = eventFor('http', { method: 'GET', path: '/', headers: [['cookie', 'a=1; b=2']] });
    (event.headers as Json).cookie = 'z=0';
    expect(recogniseEvent(event)!.request.headers.cookie).toBe('z=0; a=1; b=2');
  });

  test('client address falls back to the first X-Forwarded-For entry; scheme defaults to https', () => {
    const event = eventFor('url', { method: 'GET', path: '/', headers: [['x-forwarded-for', '192.0.2.1, 10.0.0.1']] });
    delete ((event.requestContext as Json).http as Json).sourceIp;
    expect(recogniseEvent(event)!.request).toMatchObject({ sourceIp: '192.0.2.1', scheme: 'https' });
  });

  test('ALB query values stay as sent; REST values are re-encoded', () => {
    const spec = { method: 'GET', path: '/', query: 'q=a%20b%2Bc&x=%E2%9C%93' };
    expect(recogniseEvent(eventFor('alb-multi', spec))!.request.url).toBe('/?q=a%20b%2Bc&x=%E2%9C%93');
    expect(recogniseEvent(eventFor('rest', spec))!.request.url).toBe('/?q=a%20b%2Bc&x=%E2%9C%93');
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
    expect(result).toEqual({ statusCode: 200, headers: { 'content-length': '3', 'x-a': 'b' }, body: '', isBase64Encoded: false });
  });
});
