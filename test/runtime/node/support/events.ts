// Builds the Lambda event each integration would send for one HTTP request. The shape of each event
// (its requestContext and the fields around the request) is taken from a conformance vector in
// test/vectors/requests/, the one copy of it; what is built here is only how each integration carries
// the request: REST API and Function URLs keep the path percent-encoded, HTTP APIs decode it; REST API
// decodes query values; ALB passes them as sent, and only the last one when multi-value is off.
import * as fs from 'fs';
import * as path from 'path';
import type { Context } from 'aws-lambda';

export type Shape = 'rest' | 'http' | 'url' | 'alb-multi' | 'alb-single';
export const SHAPES: readonly Shape[] = ['rest', 'http', 'url', 'alb-multi', 'alb-single'];

export interface RequestSpec {
  readonly method: string;
  /** Path as sent on the wire (percent-encoded). */
  readonly path: string;
  /** Raw query string, without '?'. */
  readonly query?: string;
  /** Header lines; a name may repeat. */
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  readonly body?: Buffer;
  /** Send the body base64-encoded (as integrations do for binary media types). */
  readonly binary?: boolean;
  readonly sourceIp?: string;
}

export type Json = Record<string, unknown>;

function queryPairs(query: string | undefined): Array<[string, string]> {
  if (!query) {
    return [];
  }
  return query.split('&').map((pair) => {
    const eq = pair.indexOf('=');
    return eq < 0 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)];
  });
}

function group(pairs: ReadonlyArray<readonly [string, string]>, transform: (text: string) => string = (text) => text): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [name, value] of pairs) {
    (out[transform(name)] ??= []).push(transform(value));
  }
  return out;
}

function lastValues(multi: Record<string, string[]>): Record<string, string> {
  return Object.fromEntries(Object.entries(multi).map(([name, values]) => [name, values[values.length - 1]]));
}

function orNull<T extends object>(value: T): T | null {
  return Object.keys(value).length ? value : null;
}

function bodyFields(spec: RequestSpec, absent: string | null | undefined): Json {
  if (!spec.body) {
    return { body: absent, isBase64Encoded: false };
  }
  return spec.binary
    ? { body: spec.body.toString('base64'), isBase64Encoded: true }
    : { body: spec.body.toString('utf8'), isBase64Encoded: false };
}

const vectorEvents = new Map<string, Json>();

/** The event of the request vector `name`, a fresh copy each call (callers change it). */
export function vectorEvent(name: string): Json {
  let event = vectorEvents.get(name);
  if (!event) {
    const file = path.join(__dirname, '..', '..', '..', 'vectors', 'requests', `${name}.json`);
    event = (JSON.parse(fs.readFileSync(file, 'utf8')) as { event: Json }).event;
    vectorEvents.set(name, event);
  }
  return structuredClone(event);
}

// The vector each shape's events start from.
const TEMPLATES: Record<Shape, string> = {
  'rest': 'rest-basic',
  'http': 'http-basic',
  'url': 'url-basic',
  'alb-multi': 'alb-multi-basic',
  'alb-single': 'alb-single-basic',
};

function withBody(event: Json, spec: RequestSpec, absent: string | null | undefined): Json {
  const fields = bodyFields(spec, absent);
  if (fields.body === undefined) {
    delete event.body;
    return { ...event, isBase64Encoded: fields.isBase64Encoded };
  }
  return { ...event, ...fields };
}

export function restEvent(spec: RequestSpec, stage = 'prod'): Json {
  const event = vectorEvent(TEMPLATES.rest);
  const requestContext = event.requestContext as Json;
  const multiHeaders = group(spec.headers ?? []);
  const multiQuery = group(queryPairs(spec.query), decodeURIComponent);
  return withBody({
    ...event,
    resource: '/{proxy+}',
    path: spec.path,
    httpMethod: spec.method,
    headers: orNull(lastValues(multiHeaders)),
    multiValueHeaders: orNull(multiHeaders),
    queryStringParameters: orNull(lastValues(multiQuery)),
    multiValueQueryStringParameters: orNull(multiQuery),
    pathParameters: { proxy: spec.path.slice(1) },
    requestContext: {
      ...requestContext,
      httpMethod: spec.method,
      identity: { ...(requestContext.identity as Json), sourceIp: spec.sourceIp ?? '198.51.100.10' },
      path: `/${stage}${spec.path}`,
      resourcePath: '/{proxy+}',
      stage,
    },
  }, spec, null);
}

function httpApiLike(shape: 'http' | 'url', spec: RequestSpec, rawPath: string): Json {
  const event = vectorEvent(TEMPLATES[shape]);
  const requestContext = event.requestContext as Json;
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (const [name, value] of spec.headers ?? []) {
    const key = name.toLowerCase();
    if (key === 'cookie') {
      cookies.push(...value.split('; '));
    } else {
      headers[key] = headers[key] === undefined ? value : `${headers[key]},${value}`;
    }
  }
  const query = Object.entries(group(queryPairs(spec.query), decodeURIComponent)).map(([name, values]) => [name, values.join(',')]);
  delete event.cookies;
  delete event.queryStringParameters;
  return withBody({
    ...event,
    rawPath,
    rawQueryString: spec.query ?? '',
    ...(cookies.length ? { cookies } : {}),
    headers,
    ...(query.length ? { queryStringParameters: Object.fromEntries(query) } : {}),
    requestContext: {
      ...requestContext,
      http: { ...(requestContext.http as Json), method: spec.method, path: rawPath, sourceIp: spec.sourceIp ?? '198.51.100.10' },
    },
  }, spec, undefined);
}

export function httpApiEvent(spec: RequestSpec): Json {
  return httpApiLike('http', spec, decodeURIComponent(spec.path));
}

export function functionUrlEvent(spec: RequestSpec): Json {
  return httpApiLike('url', spec, spec.path);
}

export function albEvent(spec: RequestSpec, multi: boolean): Json {
  const { requestContext } = vectorEvent(multi ? TEMPLATES['alb-multi'] : TEMPLATES['alb-single']);
  const headers = group((spec.headers ?? []).map(([name, value]) => [name.toLowerCase(), value] as const));
  const query = group(queryPairs(spec.query));
  // Append mode: the load balancer adds the address it saw to the client's own X-Forwarded-For line.
  const xff = spec.sourceIp ?? '198.51.100.10';
  const forwarded = headers['x-forwarded-for'];
  headers['x-forwarded-for'] = forwarded ? [...forwarded.slice(0, -1), `${forwarded[forwarded.length - 1]}, ${xff}`] : [xff];
  (headers['x-forwarded-proto'] ??= []).push('https');
  return {
    requestContext,
    httpMethod: spec.method,
    path: spec.path,
    ...(multi
      ? { multiValueQueryStringParameters: query, multiValueHeaders: headers }
      : { queryStringParameters: lastValues(query), headers: lastValues(headers) }),
    ...bodyFields(spec, ''),
  };
}

export function eventFor(shape: Shape, spec: RequestSpec): Json {
  switch (shape) {
    case 'rest': return restEvent(spec);
    case 'http': return httpApiEvent(spec);
    case 'url': return functionUrlEvent(spec);
    case 'alb-multi': return albEvent(spec, true);
    case 'alb-single': return albEvent(spec, false);
  }
}

export function lambdaContext(overrides: Partial<Context> = {}): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'test-fn',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:test-fn',
    memoryLimitInMB: '512',
    awsRequestId: 'request-1',
    logGroupName: '/aws/lambda/test-fn',
    logStreamName: 'stream',
    getRemainingTimeInMillis: () => 30_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
    ...overrides,
  };
}
