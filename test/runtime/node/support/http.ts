// The reference side of the differential tests: the same app on a real http.Server, and both sides'
// responses reduced to what a client can observe (status, app-set headers, cookies, body bytes).
import * as http from 'http';
import type { AddressInfo } from 'net';
import type { Json, RequestSpec, Shape } from './events';

export interface Observed {
  readonly status: number;
  /** Lower-case names; repeated headers joined with ', ' as Node's client does; no Set-Cookie. */
  readonly headers: Record<string, string>;
  readonly cookies: string[];
  readonly body: Buffer;
}

// Added by the HTTP server or the integration, not by the app.
const TRANSPORT_HEADERS = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding']);

export async function startServer(listener: http.RequestListener): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

export function sendOverHttp(port: number, spec: RequestSpec): Promise<Observed> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of spec.headers ?? []) {
    const existing = headers[name];
    headers[name] = existing === undefined ? value : ([] as string[]).concat(existing, value);
  }
  if (spec.body) {
    headers['content-length'] = String(spec.body.length);
  }
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: '127.0.0.1',
      port,
      method: spec.method,
      path: spec.query ? `${spec.path}?${spec.query}` : spec.path,
      headers,
      agent: false,
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const observed: Record<string, string> = {};
        for (const [name, value] of Object.entries(response.headers)) {
          if (name !== 'set-cookie' && !TRANSPORT_HEADERS.has(name) && value !== undefined) {
            observed[name] = Array.isArray(value) ? value.join(', ') : value;
          }
        }
        resolve({ status: response.statusCode ?? 0, headers: observed, cookies: response.headers['set-cookie'] ?? [], body: Buffer.concat(chunks) });
      });
    });
    request.on('error', reject);
    request.end(spec.body);
  });
}

function asStrings(value: unknown): string[] {
  if (Array.isArray(value)) {
    return value.map(String);
  }
  return [String(value)];
}

/** Reduces a shim result to what the integration would hand the client. */
export function observeLambda(shape: Shape, result: unknown): Observed {
  const response = result as Json;
  const headers: Record<string, string> = {};
  let cookies: string[] = [];
  const source = (shape === 'rest' || shape === 'alb-multi' ? response.multiValueHeaders : response.headers) as Record<string, unknown> | undefined;
  for (const [name, value] of Object.entries(source ?? {})) {
    const key = name.toLowerCase();
    if (key === 'set-cookie') {
      cookies = asStrings(value);
    } else {
      headers[key] = asStrings(value).join(', ');
    }
  }
  if (shape === 'http' || shape === 'url') {
    cookies = (response.cookies as string[] | undefined) ?? [];
  }
  const body = typeof response.body === 'string' ? response.body : '';
  return {
    status: response.statusCode as number,
    headers,
    cookies,
    body: response.isBase64Encoded === true ? Buffer.from(body, 'base64') : Buffer.from(body, 'utf8'),
  };
}
