import { isUtf8 } from 'buffer';

/** Which event family a request came in as; it decides the response format. */
export type EventShape = 'rest' | 'http' | 'alb-multi' | 'alb-single';

/** An HTTP request taken out of a Lambda event, ready to hand to a Node request listener. */
export interface HttpRequest {
  readonly method: string;
  /** Path (stage or base-path prefix removed) plus `?query` when there is one. */
  readonly url: string;
  /** The stage or base-path prefix that was removed from the path, `''` when there was none. */
  readonly basePath: string;
  readonly headers: Record<string, string | string[]>;
  readonly rawHeaders: string[];
  readonly body: Buffer;
  readonly sourceIp: string;
  readonly scheme: string;
}

/** What a request listener produced, before it is formatted for the event's shape. */
export interface HttpResponse {
  readonly statusCode: number;
  readonly statusMessage: string;
  readonly headers: Readonly<Record<string, number | string | readonly string[] | undefined>>;
  readonly body: Buffer;
}

export interface RecognisedEvent {
  readonly shape: EventShape;
  readonly request: HttpRequest;
}

type Json = Record<string, unknown>;

const EMPTY = Buffer.alloc(0);

// Node keeps only the first of these when a client repeats them (http.IncomingMessage#_addHeaderLine).
const SINGLE_VALUE_HEADERS = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host',
  'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards',
  'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
]);

// Lambda integrations frame the response themselves; passing these on would contradict them.
const HOP_BY_HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding']);

// Anything outside RFC 3986 pchar / '/' / '%XX' cannot be in an encoded path.
const PATH_UNSAFE = /%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]/;
const PATH_ESCAPE = /%[0-9A-Fa-f]{2}|[^A-Za-z0-9\-._~!$&'()*+,;=:@/]/gu;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringOf(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function percentEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += (byte < 16 ? '%0' : '%') + byte.toString(16).toUpperCase();
  }
  return out;
}

/**
 * HTTP APIs deliver the path decoded, REST APIs, Function URLs and ALB encoded; escaping only what can
 * never appear in an encoded path makes both valid without double-encoding either.
 */
export function encodePath(path: string): string {
  if (!PATH_UNSAFE.test(path)) {
    return path;
  }
  return path.replace(PATH_ESCAPE, (match) => (match.length === 3 && match.charCodeAt(0) === 37 ? match : percentEncode(match)));
}

function encodeComponent(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    // A lone surrogate: encode it the way Buffer would (U+FFFD) rather than fail the request.
    return percentEncode(text);
  }
}

/** Accumulates headers the way Node's HTTP parser does, so `req.headers` looks as it would behind a server. */
class HeaderBuilder {
  readonly headers: Record<string, string | string[]> = {};
  readonly raw: string[] = [];

  add(name: string, value: string): void {
    this.raw.push(name, value);
    const key = name.toLowerCase();
    const existing = this.headers[key];
    if (key === 'set-cookie') {
      if (Array.isArray(existing)) {
        existing.push(value);
      } else {
        this.headers[key] = [value];
      }
    } else if (existing === undefined) {
      this.headers[key] = value;
    } else if (key === 'cookie') {
      this.headers[key] = `${existing}; ${value}`;
    } else if (!SINGLE_VALUE_HEADERS.has(key)) {
      this.headers[key] = `${existing}, ${value}`;
    }
  }

  addSingle(source: unknown): void {
    if (isObject(source)) {
      for (const name in source) {
        const value = source[name];
        if (typeof value === 'string') {
          this.add(name, value);
        }
      }
    }
  }

  addMulti(source: Json): void {
    for (const name in source) {
      const values = source[name];
      if (Array.isArray(values)) {
        for (const value of values) {
          if (typeof value === 'string') {
            this.add(name, value);
          }
        }
      }
    }
  }

  /** Replaces a header (Content-Length and Cookie are derived by the shim). */
  set(name: string, value: string): void {
    this.remove(name);
    this.add(name, value);
  }

  remove(name: string): void {
    if (this.headers[name] === undefined) {
      return;
    }
    delete this.headers[name];
    const raw = this.raw;
    for (let i = raw.length - 2; i >= 0; i -= 2) {
      if (raw[i].toLowerCase() === name) {
        raw.splice(i, 2);
      }
    }
  }
}

function firstHeaderValue(headers: Record<string, string | string[]>, name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) {
    return undefined;
  }
  const text = Array.isArray(value) ? value[0] : value;
  const comma = text.indexOf(',');
  return (comma < 0 ? text : text.slice(0, comma)).trim();
}

function decodeBody(event: Json): Buffer {
  const body = event.body;
  if (typeof body !== 'string' || body.length === 0) {
    return EMPTY;
  }
  return event.isBase64Encoded === true ? Buffer.from(body, 'base64') : Buffer.from(body, 'utf8');
}

function joinQuery(params: Json, encode: (text: string) => string): string {
  let query = '';
  for (const key in params) {
    const value = params[key];
    const values = Array.isArray(value) ? value : [value];
    for (const item of values) {
      if (typeof item === 'string') {
        query += `${query ? '&' : ''}${encode(key)}=${encode(item)}`;
      }
    }
  }
  return query;
}

function keepAsSent(text: string): string {
  return text;
}

function buildRequest(
  method: string, path: string, basePath: string, query: string, builder: HeaderBuilder, event: Json, sourceIp?: string,
): HttpRequest {
  const body = decodeBody(event);
  const headers = builder.headers;
  if (body.length > 0 || headers['content-length'] !== undefined) {
    builder.set('content-length', String(body.length));
  }
  // The integration has already de-chunked the body; a leftover Transfer-Encoding would contradict Content-Length.
  builder.remove('transfer-encoding');
  const encodedPath = encodePath(path || '/');
  return {
    method,
    url: query ? `${encodedPath}?${query}` : encodedPath,
    basePath,
    headers,
    rawHeaders: builder.raw,
    body,
    sourceIp: sourceIp || firstHeaderValue(headers, 'x-forwarded-for') || '',
    scheme: firstHeaderValue(headers, 'x-forwarded-proto') || 'https',
  };
}

function restRequest(event: Json, requestContext: Json): HttpRequest {
  const builder = new HeaderBuilder();
  if (isObject(event.multiValueHeaders)) {
    builder.addMulti(event.multiValueHeaders);
  } else {
    builder.addSingle(event.headers);
  }
  let query = '';
  if (isObject(event.multiValueQueryStringParameters)) {
    query = joinQuery(event.multiValueQueryStringParameters, encodeComponent);
  } else if (isObject(event.queryStringParameters)) {
    query = joinQuery(event.queryStringParameters, encodeComponent);
  }
  const path = stringOf(event.path) ?? '/';
  const fullPath = stringOf(requestContext.path);
  let basePath = '';
  if (fullPath !== undefined && fullPath.length > path.length) {
    if (fullPath.endsWith(path)) {
      basePath = fullPath.slice(0, fullPath.length - path.length);
    } else if (path === '/' && !fullPath.endsWith('/')) {
      basePath = fullPath;
    }
  }
  const identity = isObject(requestContext.identity) ? requestContext.identity : {};
  return buildRequest(stringOf(event.httpMethod) ?? 'GET', path, basePath, query, builder, event, stringOf(identity.sourceIp));
}

function httpApiRequest(event: Json, requestContext: Json): HttpRequest {
  const builder = new HeaderBuilder();
  builder.addSingle(event.headers);
  if (Array.isArray(event.cookies) && event.cookies.length > 0) {
    const existing = builder.headers.cookie;
    const cookies = event.cookies.filter((cookie): cookie is string => typeof cookie === 'string').join('; ');
    builder.set('cookie', typeof existing === 'string' && existing ? `${existing}; ${cookies}` : cookies);
  }
  const http = isObject(requestContext.http) ? requestContext.http : {};
  let path = stringOf(event.rawPath) ?? stringOf(http.path) ?? '/';
  let basePath = '';
  const stage = stringOf(requestContext.stage);
  if (stage && stage !== '$default') {
    const prefix = `/${stage}`;
    if (path === prefix || path.startsWith(`${prefix}/`)) {
      basePath = prefix;
      path = path.slice(prefix.length) || '/';
    }
  }
  const method = stringOf(http.method) ?? 'GET';
  return buildRequest(method, path, basePath, stringOf(event.rawQueryString) ?? '', builder, event, stringOf(http.sourceIp));
}

function albRequest(event: Json, multi: boolean): HttpRequest {
  const builder = new HeaderBuilder();
  let query = '';
  if (multi) {
    builder.addMulti(event.multiValueHeaders as Json);
    if (isObject(event.multiValueQueryStringParameters)) {
      query = joinQuery(event.multiValueQueryStringParameters, keepAsSent);
    }
  } else {
    builder.addSingle(event.headers);
    if (isObject(event.queryStringParameters)) {
      query = joinQuery(event.queryStringParameters, keepAsSent);
    }
  }
  return buildRequest(stringOf(event.httpMethod) ?? 'GET', stringOf(event.path) ?? '/', '', query, builder, event);
}

/** Recognises an API Gateway REST, HTTP API / Function URL or ALB event; `undefined` for anything else. */
export function recogniseEvent(event: unknown): RecognisedEvent | undefined {
  if (!isObject(event) || !isObject(event.requestContext)) {
    return undefined;
  }
  const requestContext = event.requestContext;
  if (isObject(requestContext.elb)) {
    const multi = isObject(event.multiValueHeaders);
    return { shape: multi ? 'alb-multi' : 'alb-single', request: albRequest(event, multi) };
  }
  if (event.version === '2.0') {
    return { shape: 'http', request: httpApiRequest(event, requestContext) };
  }
  if (typeof event.httpMethod === 'string') {
    return { shape: 'rest', request: restRequest(event, requestContext) };
  }
  return undefined;
}

/** The body the integration should return, as text when that round-trips the bytes exactly. */
function encodeBody(response: HttpResponse, headOnly: boolean): { body: string; isBase64Encoded: boolean } {
  const body = response.body;
  if (headOnly || body.length === 0) {
    return { body: '', isBase64Encoded: false };
  }
  if (response.headers['content-encoding'] === undefined && isUtf8(body)) {
    return { body: body.toString('utf8'), isBase64Encoded: false };
  }
  return { body: body.toString('base64'), isBase64Encoded: true };
}

function headerValues(value: number | string | readonly string[]): readonly string[] {
  if (Array.isArray(value)) {
    return value as readonly string[];
  }
  return [String(value)];
}

let warnedAlbCookies = false;

/** Formats a listener's response for the integration that sent the request. */
export function formatResponse(shape: EventShape, response: HttpResponse, headOnly: boolean): Json {
  const { body, isBase64Encoded } = encodeBody(response, headOnly);
  const multi: Record<string, string[]> = {};
  const single: Record<string, string> = {};
  let cookies: string[] | undefined;
  for (const name in response.headers) {
    const value = response.headers[name];
    if (value === undefined || HOP_BY_HOP_HEADERS.has(name)) {
      continue;
    }
    const values = headerValues(value);
    if (shape === 'rest' || shape === 'alb-multi') {
      multi[name] = values.slice();
    } else if (shape === 'http' && name === 'set-cookie') {
      cookies = values.slice();
    } else if (name === 'set-cookie') {
      // A single-value ALB target group can carry only one Set-Cookie; the last one wins, as ALB does with repeats.
      single[name] = values[values.length - 1];
      if (values.length > 1 && !warnedAlbCookies) {
        warnedAlbCookies = true;
        console.warn('warm-web: ALB without multi-value headers returns only the last Set-Cookie; enable lambda.multi_value_headers.enabled on the target group');
      }
    } else {
      single[name] = values.join(', ');
    }
  }
  switch (shape) {
    case 'rest':
      return { statusCode: response.statusCode, multiValueHeaders: multi, body, isBase64Encoded };
    case 'http':
      return cookies
        ? { statusCode: response.statusCode, headers: single, cookies, body, isBase64Encoded }
        : { statusCode: response.statusCode, headers: single, body, isBase64Encoded };
    case 'alb-multi':
    case 'alb-single':
      return {
        statusCode: response.statusCode,
        statusDescription: `${response.statusCode} ${response.statusMessage}`.trim(),
        ...(shape === 'alb-multi' ? { multiValueHeaders: multi } : { headers: single }),
        body,
        isBase64Encoded,
      };
  }
}

/** The answer to an event that is neither a warm ping nor a recognised HTTP event. */
export function unrecognisedEventResponse(event: unknown): Json {
  let got: string;
  if (isObject(event)) {
    const keys = Object.keys(event);
    got = keys.length ? `an object with keys ${keys.slice(0, 10).join(', ')}` : 'an empty object';
  } else {
    got = event === null ? 'null' : Array.isArray(event) ? 'an array' : typeof event;
  }
  const message = `warm-web: unrecognised event shape (expected an API Gateway REST or HTTP API, Function URL or ALB event; got ${got})`;
  console.error(message);
  return { statusCode: 400, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: message };
}
