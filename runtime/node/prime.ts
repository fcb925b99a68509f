import type { Context } from 'aws-lambda';
import { decodePath } from './events';
import { monotonicMs, round1 } from './time';

/** The Host priming requests carry without WARM_WEB_ALLOWED_HOSTS: there is no real host at INIT. */
export const PRIME_HOST = 'localhost';

/**
 * The Host priming requests carry: the first entry of WARM_WEB_ALLOWED_HOSTS (a leading '.' stripped, '*'
 * skipped), a host the app allows, as the Python shim does; else `localhost`.
 */
export function primeHost(env: Readonly<Record<string, string | undefined>> = process.env): string {
  for (const raw of (env.WARM_WEB_ALLOWED_HOSTS ?? '').split(',')) {
    const entry = raw.trim().replace(/^\./, '');
    if (entry !== '' && entry !== '*') {
      return entry;
    }
  }
  return PRIME_HOST;
}
const USER_AGENT = 'warm-web-prime';
/** What getRemainingTimeInMillis() counts down from for a priming request. */
const PRIME_BUDGET_MS = 10_000;

/** Default INIT budget (WARM_WEB_INIT_WARN_MS unset). */
export const DEFAULT_INIT_WARN_MS = 8000;

type Invoke = (event: unknown, context: Context) => Promise<unknown>;

/** The paths in a WARM_WEB_PRIME value (a JSON array of paths); malformed values and entries are logged and skipped. */
export function primePathsFrom(raw: string | undefined): string[] {
  if (raw === undefined || raw === '') {
    return [];
  }
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    console.warn(`warm-web: WARM_WEB_PRIME is not JSON (${error instanceof Error ? error.message : String(error)}); not priming`);
    return [];
  }
  if (!Array.isArray(value)) {
    console.warn(`warm-web: WARM_WEB_PRIME must be a JSON array of paths, got ${JSON.stringify(raw)}; not priming`);
    return [];
  }
  const paths: string[] = [];
  for (const entry of value as unknown[]) {
    if (typeof entry === 'string' && entry.startsWith('/')) {
      paths.push(entry);
    } else {
      console.warn(`warm-web: WARM_WEB_PRIME entry ${JSON.stringify(entry)} is not a path starting with '/'; skipped`);
    }
  }
  return paths;
}

/** The INIT budget in ms: WARM_WEB_INIT_WARN_MS, or 8000 when unset or not a positive number. */
export function initWarnMsFrom(raw: string | undefined): number {
  if (raw === undefined || raw === '') {
    return DEFAULT_INIT_WARN_MS;
  }
  const value = Number(raw);
  if (!(value > 0 && Number.isFinite(value))) {
    console.warn(`warm-web: WARM_WEB_INIT_WARN_MS=${JSON.stringify(raw)} is not a positive number of milliseconds; using ${DEFAULT_INIT_WARN_MS}`);
    return DEFAULT_INIT_WARN_MS;
  }
  return value;
}

/** The HTTP API (payload 2.0) event for `GET path` (`?query` allowed), as a client would send it. */
export function primeEvent(path: string, n: number): Record<string, unknown> {
  const q = path.indexOf('?');
  // HTTP API hands rawPath over decoded once (docs/RUNTIME_CONTRACT.md, "Paths are decoded exactly once").
  const rawPath = decodePath(q < 0 ? path : path.slice(0, q));
  const rawQueryString = q < 0 ? '' : path.slice(q + 1);
  const now = Date.now();
  const host = primeHost();
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers: {
      'host': host,
      'x-forwarded-proto': 'https',
      'x-forwarded-port': '443',
      'user-agent': USER_AGENT,
      'x-warm-web-prime': '1',
    },
    requestContext: {
      accountId: 'anonymous',
      apiId: 'warm-web-prime',
      domainName: host,
      domainPrefix: host.split('.')[0],
      http: { method: 'GET', path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: USER_AGENT },
      requestId: `warm-web-prime-${n}`,
      routeKey: '$default',
      stage: '$default',
      time: new Date(now).toISOString(),
      timeEpoch: now,
    },
    isBase64Encoded: false,
  };
}

/** A stand-in for Lambda's context object: there is no invoke at INIT. */
export function primeContext(n: number, functionName: string): Context {
  const deadline = Date.now() + PRIME_BUDGET_MS;
  const env = process.env;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION || '$LATEST',
    invokedFunctionArn: '',
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || '',
    awsRequestId: `warm-web-prime-${n}`,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME || '',
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME || '',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/**
 * GETs each path through `invoke` (the adapter real requests go through), one after the other.
 * Answers are discarded; a failure (5xx, or an error escaping the adapter) is logged, never thrown.
 * Logs one summary line; resolves with how long priming took.
 */
export async function prime(invoke: Invoke, paths: readonly string[], functionName: string): Promise<number> {
  const started = monotonicMs();
  const results: string[] = [];
  for (let n = 0; n < paths.length; n++) {
    const path = paths[n];
    let status: number | string;
    try {
      const answer = await invoke(primeEvent(path, n), primeContext(n, functionName)) as { statusCode?: unknown };
      status = typeof answer?.statusCode === 'number' ? answer.statusCode : 'error';
      if (typeof status === 'number' && status >= 500) {
        console.warn(`warm-web: priming GET ${path} failed with status ${status} (not fatal)`);
      }
    } catch (error) {
      status = 'error';
      console.warn(`warm-web: priming GET ${path} failed (not fatal):`, error);
    }
    results.push(`${path} ${status}`);
  }
  const took = round1(monotonicMs() - started);
  console.info(`warm-web: primed ${paths.length} path${paths.length === 1 ? '' : 's'} in ${took} ms: ${results.join(', ')}`);
  return took;
}
