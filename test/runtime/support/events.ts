// Builds the Lambda events each integration would send for one HTTP request, modelled on captured
// events: REST API and Function URLs keep the path percent-encoded, HTTP APIs decode it; REST API
// decodes query values; ALB passes them as sent, and only the last one when multi-value is off.
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

export function restEvent(spec: RequestSpec, stage = 'prod'): Json {
  const headers = spec.headers ?? [];
  const multiHeaders = group(headers);
  const multiQuery = group(queryPairs(spec.query), decodeURIComponent);
  return {
    resource: '/{proxy+}',
    path: spec.path,
    httpMethod: spec.method,
    headers: orNull(lastValues(multiHeaders)),
    multiValueHeaders: orNull(multiHeaders),
    queryStringParameters: orNull(lastValues(multiQuery)),
    multiValueQueryStringParameters: orNull(multiQuery),
    pathParameters: { proxy: spec.path.slice(1) },
    stageVariables: null,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      httpMethod: spec.method,
      identity: { sourceIp: spec.sourceIp ?? '198.51.100.10', userAgent: 'test' },
      path: `/${stage}${spec.path}`,
      protocol: 'HTTP/1.1',
      requestId: 'rest-request',
      resourcePath: '/{proxy+}',
      stage,
    },
    ...bodyFields(spec, null),
  };
}

function httpApiLike(spec: RequestSpec, rawPath: string, domainName: string): Json {
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
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString: spec.query ?? '',
    ...(cookies.length ? { cookies } : {}),
    headers,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      domainName,
      http: { method: spec.method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: spec.sourceIp ?? '198.51.100.10', userAgent: 'test' },
      requestId: 'v2-request',
      routeKey: '$default',
      stage: '$default',
      time: '01/Jan/2025:00:00:00 +0000',
      timeEpoch: 1735689600000,
    },
    ...bodyFields(spec, undefined),
  };
}

export function httpApiEvent(spec: RequestSpec): Json {
  return httpApiLike(spec, decodeURIComponent(spec.path), 'abc123.execute-api.eu-west-1.amazonaws.com');
}

export function functionUrlEvent(spec: RequestSpec): Json {
  return httpApiLike(spec, spec.path, 'abc123.lambda-url.eu-west-1.on.aws');
}

export function albEvent(spec: RequestSpec, multi: boolean): Json {
  const headers = group((spec.headers ?? []).map(([name, value]) => [name.toLowerCase(), value] as const));
  const query = group(queryPairs(spec.query));
  const xff = spec.sourceIp ?? '198.51.100.10';
  (headers['x-forwarded-for'] ??= []).push(xff);
  (headers['x-forwarded-proto'] ??= []).push('https');
  return {
    requestContext: { elb: { targetGroupArn: 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/tg/0123456789abcdef' } },
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
