import { IncomingMessage, type Server, ServerResponse } from 'http';
import { type AddressInfo, isIP, isIPv6, type Socket } from 'net';
import { Duplex } from 'stream';
import type { Context } from 'aws-lambda';
import type { HttpRequest, HttpResponse } from './events';
import { isPromiseLike } from './handler';

/** A Node request listener: an Express app, `app.callback()` of Koa, or a plain `(req, res)` function. */
export type RequestListener = (req: IncomingMessage, res: ServerResponse) => unknown;

/** What the app finds on `req.aws`. */
export interface AwsRequestInfo {
  readonly event: unknown;
  readonly context: Context;
  /** The REST stage, HTTP API stage or custom-domain base path removed from `req.url` (`''` when none). */
  readonly basePath: string;
}

export type WarmWebRequest = IncomingMessage & { aws: AwsRequestInfo };

const CRLF = '\r\n';
const CRLF2 = '\r\n\r\n';

/** The ends of the connection as the app sees them on `req.socket`. */
interface Endpoints {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
}

/**
 * Stands in for the TCP socket: http.ServerResponse writes its serialised head and body here, and this
 * keeps the final head's text and the body bytes. It stays readable, as a live connection is: on-finished
 * (body-parser, finalhandler) treats a request on an unreadable socket as already read.
 */
class MemorySocket extends Duplex {
  readonly localAddress: string;
  readonly localPort: number;
  readonly localFamily: string;
  readonly remoteAddress: string;
  /** The integrations do not pass the client's port on. */
  readonly remotePort = 0;
  readonly remoteFamily: string;
  readonly encrypted: boolean;
  /** The final (non-1xx) response head as sent, status line included, once it has been written. */
  head: string | undefined;
  private readonly chunks: Buffer[] = [];
  private headText = '';

  constructor(endpoints: Endpoints, encrypted: boolean) {
    super({ decodeStrings: false });
    this.localAddress = endpoints.localAddress;
    this.localPort = endpoints.localPort;
    this.localFamily = familyOf(endpoints.localAddress);
    this.remoteAddress = endpoints.remoteAddress;
    this.remoteFamily = familyOf(endpoints.remoteAddress);
    this.encrypted = encrypted;
  }

  /** As net.Socket#address(): the local end, which is the port the client sent the request to. */
  address(): AddressInfo {
    return { address: this.localAddress, family: this.localFamily, port: this.localPort };
  }

  body(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
  }

  override _read(): void {
    // Nothing arrives through the socket: the whole request body is pushed into the request up front.
  }

  override _write(chunk: Buffer | string, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (typeof chunk === 'string') {
      const text = this.head === undefined ? this.takeHeads(chunk) : chunk;
      if (text) {
        this.chunks.push(Buffer.from(text, encoding));
      }
    } else if (chunk.length > 0) {
      this.chunks.push(chunk);
    }
    callback();
  }

  /**
   * ServerResponse always sends its head as a latin1 string, alone or with a string body appended;
   * 1xx heads (writeEarlyHints, writeContinue) come before the final one. Returns what follows the final head.
   */
  private takeHeads(text: string): string {
    let rest = this.headText + text;
    while (this.head === undefined) {
      const end = rest.indexOf(CRLF2);
      if (end < 0) {
        this.headText = rest;
        return '';
      }
      // 'HTTP/1.1 1xx': the status class is the character after the 9-character 'HTTP/1.1 ' prefix.
      if (rest.charCodeAt(9) !== 0x31) {
        this.head = rest.slice(0, end);
      }
      rest = rest.slice(end + CRLF2.length);
    }
    this.headText = '';
    return rest;
  }
}

function familyOf(address: string): string {
  return isIPv6(address) ? 'IPv6' : 'IPv4';
}

function portNumber(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,5}$/.test(text)) {
    return undefined;
  }
  const port = Number(text);
  return port > 0 && port < 65536 ? port : undefined;
}

/**
 * The server end is where the client sent the request: the port the integration accepted it on
 * (X-Forwarded-Port), else the one in Host, else the scheme's; the address is Host's when that is an IP
 * literal (a real server reached by IP reports that IP), else loopback (the shim is on this machine).
 */
function endpointsOf(request: HttpRequest): Endpoints {
  const host = typeof request.headers.host === 'string' ? request.headers.host : '';
  // 'name', 'name:port', '[v6]' or '[v6]:port'.
  const hostMatch = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(host);
  const hostname = hostMatch ? hostMatch[1].replace(/^\[(.*)\]$/, '$1') : '';
  const forwarded = request.headers['x-forwarded-port'];
  const forwardedPort = typeof forwarded === 'string' ? portNumber(forwarded.split(',')[0].trim()) : undefined;
  return {
    localAddress: isIP(hostname) ? hostname : '127.0.0.1',
    localPort: forwardedPort ?? portNumber(hostMatch?.[2]) ?? (request.scheme === 'http' ? 80 : 443),
    remoteAddress: request.sourceIp,
  };
}

/** The header fields of a response head, as a client parses them: lower-case names, repeats as arrays. */
function headerFields(head: string): Record<string, string | string[]> {
  const fields: Record<string, string | string[]> = Object.create(null);
  let at = head.indexOf(CRLF);
  while (at >= 0) {
    const start = at + CRLF.length;
    at = head.indexOf(CRLF, start);
    const line = head.slice(start, at < 0 ? head.length : at);
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    const existing = fields[name];
    if (existing === undefined) {
      fields[name] = value;
    } else if (Array.isArray(existing)) {
      existing.push(value);
    } else {
      fields[name] = [existing, value];
    }
  }
  return fields;
}

/** The data of a chunked body (`7\r\nCombine\r\n...0\r\n\r\n`); trailers have no place in a Lambda answer. */
function unchunk(framed: Buffer): Buffer {
  const data: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = framed.indexOf(CRLF, at);
    // The size line may carry ';extensions' after the hex digits, which parseInt stops at.
    const size = lineEnd < 0 ? 0 : parseInt(framed.toString('latin1', at, lineEnd), 16);
    if (!(size > 0)) {
      return data.length === 1 ? data[0] : Buffer.concat(data);
    }
    data.push(framed.subarray(lineEnd + CRLF.length, lineEnd + CRLF.length + size));
    at = lineEnd + CRLF.length + size + CRLF.length;
  }
}

/** What the response sent, read back from its head: writeHead() headers never reach getHeaders(). */
function sentResponse(res: ServerResponse, socket: MemorySocket): HttpResponse {
  const headers = headerFields(socket.head ?? '');
  let body = socket.body();
  if (res.chunkedEncoding) {
    body = unchunk(body);
    delete headers['transfer-encoding'];
  }
  return { statusCode: res.statusCode, statusMessage: res.statusMessage, headers, body };
}

/**
 * Serves an http.Server the app created (and never started) the way it would be served: each request
 * goes to its current 'request' listeners, in order, with the server as `this`.
 */
export function serverListener(server: Server): RequestListener {
  return (req, res) => {
    let pending: PromiseLike<unknown>[] | undefined;
    for (const listener of server.listeners('request')) {
      const result: unknown = listener.call(server, req, res);
      if (isPromiseLike(result)) {
        (pending ??= []).push(result);
      }
    }
    return pending && Promise.all(pending);
  };
}

function destroySocket(socket: MemorySocket): void {
  socket.destroy();
}

function internalServerError(): HttpResponse {
  return {
    statusCode: 500,
    statusMessage: 'Internal Server Error',
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    body: Buffer.from('Internal Server Error'),
  };
}

/**
 * Runs one request through a listener with real http.IncomingMessage / http.ServerResponse objects and
 * resolves with what it wrote. An error escaping the listener resolves to a 500: the environment keeps serving.
 */
export function serveRequest(listener: RequestListener, request: HttpRequest, event: unknown, context: Context): Promise<HttpResponse> {
  return new Promise((resolve) => {
    const socket = new MemorySocket(endpointsOf(request), request.scheme === 'https');
    const netSocket = socket as unknown as Socket;
    const req = new IncomingMessage(netSocket) as WarmWebRequest;
    req.method = request.method;
    req.url = request.url;
    req.httpVersion = '1.1';
    req.httpVersionMajor = 1;
    req.httpVersionMinor = 1;
    req.headers = request.headers;
    req.rawHeaders = request.rawHeaders;
    req.complete = true;
    req.aws = { event, context, basePath: request.basePath };
    if (request.body.length > 0) {
      req.push(request.body);
    }
    req.push(null);

    const res = new ServerResponse(req);
    // Framing is left as a real server's (Content-Length for a body sent by end() alone, chunked
    // otherwise): the chunks are undone in sentResponse, as the integration frames the answer itself.
    res.sendDate = false;
    res.assignSocket(netSocket);

    let settled = false;
    const fail = (error: unknown): void => {
      if (!settled) {
        settled = true;
        // The path only: query strings carry tokens, which do not belong in the log.
        console.error('warm-web: the app failed to handle', request.method, request.url.split('?', 1)[0], error);
        resolve(internalServerError());
      }
      socket.destroy();
    };
    res.once('finish', () => {
      if (!settled) {
        settled = true;
        resolve(sentResponse(res, socket));
      }
      // As after a real response the socket goes away and the response emits 'close'. Not before the
      // current write has completed: destroying under it costs an ERR_STREAM_DESTROYED per request.
      process.nextTick(destroySocket, socket);
    });
    try {
      const result = listener(req, res);
      if (isPromiseLike(result)) {
        result.then(undefined, fail);
      }
    } catch (error) {
      fail(error);
    }
  });
}
