import { IncomingMessage, ServerResponse } from 'http';
import type { Socket } from 'net';
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

const CRLF2 = '\r\n\r\n';

/**
 * Stands in for the TCP socket: http.ServerResponse writes its serialised head and body here, and this
 * keeps only the body bytes. It stays readable, as a live connection is: on-finished (body-parser,
 * finalhandler) treats a request on an unreadable socket as already read.
 */
class MemorySocket extends Duplex {
  readonly remoteAddress: string;
  readonly encrypted: boolean;
  private readonly chunks: Buffer[] = [];
  private inHead = true;

  constructor(remoteAddress: string, encrypted: boolean) {
    super({ decodeStrings: false });
    this.remoteAddress = remoteAddress;
    this.encrypted = encrypted;
  }

  body(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
  }

  override _read(): void {
    // Nothing arrives through the socket: the whole request body is pushed into the request up front.
  }

  override _write(chunk: Buffer | string, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (typeof chunk === 'string') {
      const text = this.inHead ? this.skipHeads(chunk) : chunk;
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
   * 1xx heads (writeEarlyHints, writeContinue) come before the final one.
   */
  private skipHeads(text: string): string {
    let rest = text;
    while (this.inHead) {
      const end = rest.indexOf(CRLF2);
      if (end < 0) {
        return '';
      }
      // 'HTTP/1.1 1xx': the status class is the character after the 9-character 'HTTP/1.1 ' prefix.
      this.inHead = rest.charCodeAt(9) === 0x31;
      rest = rest.slice(end + CRLF2.length);
    }
    return rest;
  }
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
    const socket = new MemorySocket(request.sourceIp, request.scheme === 'https');
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
    // Without a Content-Length Node would frame the body in chunked encoding; the integration frames it instead.
    res.useChunkedEncodingByDefault = false;
    res.sendDate = false;
    res.assignSocket(netSocket);

    let settled = false;
    const fail = (error: unknown): void => {
      if (!settled) {
        settled = true;
        console.error('warm-web: the app failed to handle', request.method, request.url, error);
        resolve(internalServerError());
      }
      socket.destroy();
    };
    res.once('finish', () => {
      if (!settled) {
        settled = true;
        resolve({ statusCode: res.statusCode, statusMessage: res.statusMessage, headers: res.getHeaders(), body: socket.body() });
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
