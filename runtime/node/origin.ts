/**
 * The origin secret (WARM_WEB_ORIGIN_SECRET, set by `WebDistribution`): with it set, an HTTP event must
 * carry the `x-warm-web-origin` header CloudFront adds as an origin custom header, or it is answered 403
 * without the app seeing it. The header is removed before the app sees the event. Events that are not
 * HTTP requests (warm pings, commands, SQS...) are left alone.
 */
import { createHash, timingSafeEqual } from 'crypto';

/** The header CloudFront adds to every origin request. */
export const ORIGIN_HEADER = 'x-warm-web-origin';

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Compares in constant time: digests have one length whatever was sent. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** Takes the header (any case) out of a headers map; returns its values. */
function takeHeader(headers: unknown): string[] {
  const found: string[] = [];
  if (!isObject(headers)) {
    return found;
  }
  for (const name of Object.keys(headers)) {
    if (name.toLowerCase() === ORIGIN_HEADER) {
      const value = headers[name];
      for (const item of Array.isArray(value) ? value : [value]) {
        found.push(String(item));
      }
      delete headers[name];
    }
  }
  return found;
}

/**
 * The 403 answer for an HTTP event that did not come through the distribution, or `undefined` when the
 * event may go on (no secret configured, not an HTTP event, or the right header, which is then removed).
 */
export function refuseForeignOrigin(event: unknown, secret = process.env.WARM_WEB_ORIGIN_SECRET): Json | undefined {
  if (!secret || !isObject(event) || !isObject(event.requestContext)) {
    return undefined;
  }
  // A REST API event carries the header in both maps; multiValueHeaders has every copy of it.
  const single = takeHeader(event.headers);
  const multi = takeHeader(event.multiValueHeaders);
  const values = isObject(event.multiValueHeaders) ? multi : single;
  // CloudFront overwrites a viewer's header of the same name, so a request through it has exactly one.
  if (values.length === 1 && sameSecret(values[0], secret)) {
    return undefined;
  }
  const headers = { 'content-type': 'text/plain; charset=utf-8' };
  const alb = isObject(event.requestContext.elb);
  return {
    statusCode: 403,
    ...(alb ? { statusDescription: '403 Forbidden' } : {}),
    ...(alb && isObject(event.multiValueHeaders) ? { multiValueHeaders: { 'content-type': [headers['content-type']] } } : { headers }),
    body: 'Forbidden',
    isBase64Encoded: false,
  };
}
