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

/** An HTTP event that cannot be served as it is; the shape says how to answer. */
export interface InvalidEvent {
  readonly shape: EventShape;
  /** The 400's body. */
  readonly invalid: string;
  /** For an event missing a field its shape always has: which, for the error line. */
  readonly malformed?: string;
}

export interface RecogniseOptions {
  /**
   * An explicit base path (WARM_WEB_BASE_PATH, validated): removed from the request path when the path
   * starts with it, and reported in `basePath` after any stage prefix.
   */
  readonly basePath?: string;
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
// Outside pchar / '/', '%' included: what a decoded path needs escaped.
const DECODED_PATH_ESCAPE = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/]/gu;

// https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html: <url-id>.lambda-url.<region>.on.aws
const FUNCTION_URL_DOMAIN = /\.lambda-url\.[a-z0-9-]+\.on\.aws$/;

export const INVALID_BASE64_BODY = "warm-web: the event's body is marked isBase64Encoded but is not valid base64";
export const MALFORMED_EVENT_BODY = 'warm-web: unrecognised event shape (expected API Gateway REST or HTTP API, Function URL or ALB)';

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
 * For paths that arrive encoded (REST, Function URL, ALB): escapes only what can never appear in an
 * encoded path, keeping existing %-escapes (an HTTP API's decoded path goes through encodeDecodedPath).
 */
export function encodePath(path: string): string {
  if (!PATH_UNSAFE.test(path)) {
    return path;
  }
  return path.replace(PATH_ESCAPE, (match) => (match.length === 3 && match.charCodeAt(0) === 37 ? match : percentEncode(match)));
}

/**
 * Percent-encodes a path that arrived decoded (HTTP API rawPath), '%' included, so the app decodes it
 * exactly once: `/a%20b/100%` becomes `/a%2520b/100%25`, not `/a b/100%`.
 */
export function encodeDecodedPath(path: string): string {
  return path.replace(DECODED_PATH_ESCAPE, percentEncode);
}

/** Percent-decoding, all or nothing: a path with a malformed escape (`%zz`, bytes that are not UTF-8) is kept as it came. */
export function decodePath(path: string): string {
  if (!path.includes('%')) {
    return path;
  }
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/**
 * Whether a payload 2.0 rawPath arrives decoded: API Gateway HTTP APIs decode it once (on any domain, so
 * priming's events for localhost carry it decoded too); Function URLs keep it as the client sent it.
 */
function rawPathIsDecoded(domainName: string | undefined): boolean {
  return !FUNCTION_URL_DOMAIN.test(domainName ?? '');
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

/** `address` from `address`, `address:port` or `[IPv6]:port` (routing.http.xff_client_port.enabled). */
function withoutPort(entry: string): string {
  if (entry.startsWith('[')) {
    const end = entry.indexOf(']');
    return end < 0 ? entry : entry.slice(1, end);
  }
  const colon = entry.indexOf(':');
  return colon >= 0 && colon === entry.lastIndexOf(':') ? entry.slice(0, colon) : entry;
}

/**
 * The client address a proxy vouches for: the RIGHTMOST X-Forwarded-For entry. Load balancers and API
 * Gateway append the address they saw; everything left of it came from the client and can be forged.
 */
function forwardedClient(headers: Record<string, string | string[]>): string | undefined {
  const value = headers['x-forwarded-for'];
  if (value === undefined) {
    return undefined;
  }
  const text = typeof value === 'string' ? value : value.join(',');
  const last = text.slice(text.lastIndexOf(',') + 1).trim();
  return last ? withoutPort(last) : undefined;
}

/**
 * RFC 4648 base64 (the alphabet with + and /, padded), the only encoding the integrations produce, decoded;
 * `undefined` for anything else. Buffer.from skips characters outside the alphabet and reads - and _ as
 * + and /: a decoded length short of what the text's length promises, or a - or _, means it was not
 * base64. (A regular expression over a 2 MB body costs ten times the decoding.)
 */
function decodeBase64(text: string): Buffer | undefined {
  if (text.length % 4 !== 0) {
    return undefined;
  }
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const decoded = Buffer.from(text, 'base64');
  return decoded.length === (text.length / 4) * 3 - padding && !text.includes('-') && !text.includes('_') ? decoded : undefined;
}

/** The request body, or `undefined` when it is marked base64 but is not. */
function decodeBody(event: Json): Buffer | undefined {
  const body = event.body;
  if (typeof body !== 'string' || body.length === 0) {
    return EMPTY;
  }
  if (event.isBase64Encoded !== true) {
    return Buffer.from(body, 'utf8');
  }
  // Decoding whatever is there would hand the app garbage.
  return decodeBase64(body);
}

/** `path` minus `prefix` when it starts with it as whole segments (`/api` matches `/api` and `/api/x`, not `/apix`). */
function afterPrefix(path: string, prefix: string): string | undefined {
  if (path === prefix) {
    return '/';
  }
  return path.startsWith(prefix) && path.charCodeAt(prefix.length) === 47 ? path.slice(prefix.length) : undefined;
}

/** The leading `count` segments of `path` and the rest, or `undefined` when the path has no more than that. */
function splitSegments(path: string, count: number): [string, string] | undefined {
  let end = 0;
  for (let i = 0; i < count; i++) {
    if (path.charCodeAt(end) !== 47) {
      return undefined;
    }
    const next = path.indexOf('/', end + 1);
    if (next === end + 1) {
      return undefined;
    }
    end = next < 0 ? path.length : next;
  }
  return end > 0 ? [path.slice(0, end), path.slice(end) || '/'] : undefined;
}

/**
 * How many path segments the REST resource matched: its own, with a greedy `{name+}` standing for as many
 * as its path parameter (decoded, as API Gateway hands them over) has. `undefined` when the event does not tell.
 */
function resourceSegments(event: Json): number | undefined {
  const resource = stringOf(event.resource);
  if (resource === undefined) {
    return undefined;
  }
  const parameters = isObject(event.pathParameters) ? event.pathParameters : {};
  let count = 0;
  for (const part of resource.split('/')) {
    if (part.endsWith('+}') && part.startsWith('{')) {
      const value = parameters[part.slice(1, -2)];
      if (typeof value !== 'string') {
        return undefined;
      }
      count += value.split('/').filter(Boolean).length;
    } else if (part) {
      count += 1;
    }
  }
  return count;
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

/** The request, or the reason it cannot be served. `encodedPath` goes in req.url; `basePath` is decoded. */
function buildRequest(
  method: string, encodedPath: string, basePath: string, query: string, builder: HeaderBuilder, event: Json, sourceIp?: string,
): HttpRequest | string {
  const body = decodeBody(event);
  if (body === undefined) {
    return INVALID_BASE64_BODY;
  }
  const headers = builder.headers;
  if (body.length > 0 || headers['content-length'] !== undefined) {
    builder.set('content-length', String(body.length));
  }
  // The integration has already de-chunked the body; a leftover Transfer-Encoding would contradict Content-Length.
  builder.remove('transfer-encoding');
  if (headers.host === undefined) {
    // Every HTTP/1.1 request has one; the integration knows the name the client used (a console test
    // invoke may have neither: then the name priming uses, as the Python shim does).
    const domainName = isObject(event.requestContext) ? stringOf(event.requestContext.domainName) : undefined;
    builder.add('host', domainName || 'localhost');
  }
  const path = encodedPath || '/';
  return {
    method,
    url: query ? `${path}?${query}` : path,
    basePath,
    headers,
    rawHeaders: builder.raw,
    body,
    sourceIp: sourceIp || forwardedClient(headers) || '',
    scheme: firstHeaderValue(headers, 'x-forwarded-proto') || 'https',
  };
}

/**
 * Splits a path into the prefix the app does not route on and the rest: the explicit base path (in the
 * same form as the path, encoded or not) when the path starts with it, else what `derived` finds.
 */
function splitBasePath(path: string, basePath: string | undefined, derived?: (path: string) => [string, string] | undefined): [string, string] {
  if (basePath) {
    const rest = afterPrefix(path, basePath);
    if (rest !== undefined) {
      return [basePath, rest];
    }
  }
  return derived?.(path) ?? ['', path];
}

function encodedBasePath(options: RecogniseOptions): string | undefined {
  return options.basePath === undefined ? undefined : encodePath(options.basePath);
}

function restRequest(event: Json, requestContext: Json, method: string, options: RecogniseOptions): HttpRequest | string {
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
  const eventPath = stringOf(event.path) ?? '/';
  // The stage: on the execute-api domain requestContext.path is /{stage} + path.
  const fullPath = stringOf(requestContext.path);
  let stage = '';
  if (fullPath !== undefined && fullPath.length > eventPath.length) {
    if (fullPath.endsWith(eventPath)) {
      stage = fullPath.slice(0, fullPath.length - eventPath.length);
    } else if (eventPath === '/' && !fullPath.endsWith('/')) {
      stage = fullPath;
    }
  }
  // A custom domain's base path mapping is in both paths; the resource tells how much of the path it
  // matched. Counted in the decoded path, as the parameters are: an encoded %2F in them is a segment more.
  const matched = resourceSegments(event);
  const [base, path] = splitBasePath(encodePath(eventPath), encodedBasePath(options), matched === undefined ? undefined : (encoded) => {
    const total = decodePath(encoded).split('/').filter(Boolean).length;
    return total > matched ? splitSegments(encoded, total - matched) : undefined;
  });
  const identity = isObject(requestContext.identity) ? requestContext.identity : {};
  return buildRequest(method, path, decodePath(stage + base), query, builder, event, stringOf(identity.sourceIp));
}

function httpApiRequest(event: Json, requestContext: Json, method: string, options: RecogniseOptions): HttpRequest | string {
  const builder = new HeaderBuilder();
  builder.addSingle(event.headers);
  if (Array.isArray(event.cookies) && event.cookies.length > 0) {
    const existing = builder.headers.cookie;
    const cookies = event.cookies.filter((cookie): cookie is string => typeof cookie === 'string').join('; ');
    builder.set('cookie', typeof existing === 'string' && existing ? `${existing}; ${cookies}` : cookies);
  }
  const http = isObject(requestContext.http) ? requestContext.http : {};
  let path = stringOf(event.rawPath) ?? stringOf(http.path) ?? '/';
  const decoded = rawPathIsDecoded(stringOf(requestContext.domainName));
  let stage = '';
  const stageName = stringOf(requestContext.stage);
  if (stageName && stageName !== '$default') {
    const rest = afterPrefix(path, `/${stageName}`);
    if (rest !== undefined) {
      stage = `/${stageName}`;
      path = rest;
    }
  }
  let encoded: string;
  let base: string;
  if (decoded) {
    let rest: string;
    [base, rest] = splitBasePath(path, options.basePath);
    encoded = encodeDecodedPath(rest);
  } else {
    [base, encoded] = splitBasePath(encodePath(path), encodedBasePath(options));
    base = decodePath(base);
  }
  return buildRequest(method, encoded, stage + base, stringOf(event.rawQueryString) ?? '', builder, event, stringOf(http.sourceIp));
}

function albRequest(event: Json, multi: boolean, method: string, options: RecogniseOptions): HttpRequest | string {
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
  const [base, path] = splitBasePath(encodePath(stringOf(event.path) ?? '/'), encodedBasePath(options));
  return buildRequest(method, path, decodePath(base), query, builder, event);
}

function recognised(shape: EventShape, request: HttpRequest | string): RecognisedEvent | InvalidEvent {
  return typeof request === 'string' ? { shape, invalid: request } : { shape, request };
}

/**
 * Recognises an API Gateway REST, HTTP API / Function URL or ALB event; `undefined` for anything else,
 * an InvalidEvent for one of those that cannot be served (no method, a body marked base64 that is not).
 */
export function recogniseEvent(event: unknown, options: RecogniseOptions = {}): RecognisedEvent | InvalidEvent | undefined {
  if (!isObject(event) || !isObject(event.requestContext)) {
    return undefined;
  }
  const requestContext = event.requestContext;
  if (isObject(requestContext.elb)) {
    const multi = isObject(event.multiValueHeaders);
    const shape = multi ? 'alb-multi' : 'alb-single';
    if (typeof event.httpMethod !== 'string') {
      return { shape, invalid: MALFORMED_EVENT_BODY, malformed: `httpMethod is ${JSON.stringify(event.httpMethod) ?? 'missing'}` };
    }
    return recognised(shape, albRequest(event, multi, event.httpMethod, options));
  }
  if (event.version === '2.0') {
    // A guessed GET would run the app for a request nobody described.
    const method = isObject(requestContext.http) ? requestContext.http.method : undefined;
    if (typeof method !== 'string') {
      return { shape: 'http', invalid: MALFORMED_EVENT_BODY, malformed: `requestContext.http.method is ${JSON.stringify(method) ?? 'missing'}` };
    }
    return recognised('http', httpApiRequest(event, requestContext, method, options));
  }
  if (typeof event.httpMethod === 'string') {
    return recognised('rest', restRequest(event, requestContext, event.httpMethod, options));
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
      // Always a list, as the Python shim answers: both give the same answer to the same response.
      return { statusCode: response.statusCode, headers: single, cookies: cookies ?? [], body, isBase64Encoded };
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

function kindOf(event: unknown): string {
  if (event === null) {
    return 'null';
  }
  if (Array.isArray(event)) {
    return 'an array';
  }
  const type = typeof event;
  return type === 'object' ? 'an object' : `a ${type}`;
}

/**
 * The answer to an event that is neither a warm ping nor an HTTP event: another warmer's ping, a schedule,
 * a console test. Not the client's or the app's fault, so one debug line, never an error line; the body
 * names only the event's type so that both shims give the same text.
 */
export function unrecognisedEventResponse(event: unknown): Json {
  const keys = isObject(event) ? `; top-level keys: ${Object.keys(event).slice(0, 20).join(', ') || 'none'}` : '';
  console.debug(`warm-web: not an HTTP event, answered 400 without calling the app${keys}`);
  const body = `warm-web: unrecognised event shape (expected an API Gateway REST or HTTP API, Function URL or ALB event; got ${kindOf(event)})`;
  return { statusCode: 400, headers: { 'content-type': 'text/plain; charset=utf-8' }, body };
}

/**
 * The 400 for an HTTP event that cannot be served, in the format its integration expects, and one log
 * line: an error for a malformed event (whatever sends it needs fixing), a warning for a bad body.
 */
export function invalidEventResponse(invalid: InvalidEvent): Json {
  if (invalid.malformed) {
    console.error(`warm-web: malformed ${invalid.shape} event: ${invalid.malformed}; answered 400 without calling the app`);
  } else {
    console.warn(`${invalid.invalid} (${invalid.shape} event); answered 400 without calling the app`);
  }
  const body = Buffer.from(invalid.invalid, 'utf8');
  return formatResponse(invalid.shape, { statusCode: 400, statusMessage: 'Bad Request', headers: { 'content-type': 'text/plain; charset=utf-8' }, body }, false);
}
