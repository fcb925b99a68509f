// Slim code for Node apps: fetch the code archive from S3 and unpack it into /tmp during INIT.
// The same contract and layout as runtime/python/warm_web/slim.py (format: docs/SLIM_FORMAT.md):
//
//   WARM_WEB_SLIM_BUCKET, WARM_WEB_SLIM_KEY, WARM_WEB_SLIM_SIZE (archive bytes),
//   WARM_WEB_SLIM_SHA256 (SHA-256 of the archive's index member, which holds every shard's SHA-256),
//   WARM_WEB_SLIM_UNPACKED (bytes of file content once unpacked).
//
// One open-ended ranged GET reads the index and runs on into the first run of shards; a few more ranged
// GETs fetch the other runs in parallel. Each shard is hashed as it streams in, inflated on libuv's thread
// pool and written by a streaming tar reader, into a private temporary directory. Until every shard has
// been verified that directory holds only real directories and files (symlinks are created last, and an
// entry under one is refused), so nothing unverified can be written anywhere else; then the marker
// naming the archive's hash is written and the directory renamed to $TMPDIR/warm-web/<sha256>.
// The whole load has a deadline (WARM_WEB_SLIM_DEADLINE_MS, default Lambda's 10 s on-demand INIT
// limit). A failure that another attempt could mend is retried once; then the error names the bucket,
// key and cause, and the temporary directory is gone. Node built-ins only.
/* eslint-disable no-bitwise */ // file modes, gzip and pyc header fields are bit fields
import { createHash, createHmac, type Hash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';

export const MARKER = '.warm-web-slim';
const FORMAT = 'warm-web-slim';
const VERSION = 1;
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const TIMEOUT_MS = 20_000;
/**
 * The whole load's deadline when the caller gives no signal (the layer's entry does: see index.ts),
 * counted from INIT's start (the process's), the same rule as the Python loader's: Lambda ends an
 * on-demand INIT at 10 s, and the load stops half a second before.
 */
const DEFAULT_DEADLINE_MS = 9_500;
/**
 * Provisioned-concurrency INITs, and the INIT after one that ran out of time (Lambda runs it again inside
 * the first invoke, with the function's timeout), may take longer: Lambda allows them 130 s or more.
 */
const LONG_DEADLINE_MS = 125_000;
/** `$TMPDIR/warm-web/.out-of-time-<sha256>`: the last load of that archive in this sandbox ran out of time. */
const OUT_OF_TIME = '.out-of-time-';
/** The most a pax header may hold (the packer writes a path, a link target and a size). */
const MAX_PAX = 64 * 1024;
const BLOCK = 512;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

export type SlimEnv = Record<string, string | undefined>;

export interface MaterialiseOptions {
  /** Parallel ranged GETs (default: cores + 1, 2 to 8). */
  readonly workers?: number;
  /** Print the SlimLoadMs / SlimBytes EMF line when the archive was loaded (default true). */
  readonly emit?: boolean;
  /**
   * Ends the load when aborted (its reason is the error): the caller bounds the load, which then has no
   * deadline of its own. The layer's entry passes one, because its load runs past INIT into the invoke
   * that waits for it, and only that invoke knows how long it may take. Default: the INIT budget
   * (`deadlineFor`).
   */
  readonly signal?: AbortSignal;
}

export interface Budget {
  /** Milliseconds from now. */
  readonly ms: number;
  /** What the error says the deadline was. */
  readonly source: string;
  /** The on-demand INIT budget: a load that runs out of it leaves a note for the next INIT. */
  readonly onDemand: boolean;
}

/**
 * How long a load that starts now may take, and where that comes from: `WARM_WEB_SLIM_DEADLINE_MS` (tests),
 * else the INIT budget less the time INIT has run. `note` is the file a load that ran out of time leaves.
 */
export function deadlineFor(env: SlimEnv, note: string, sinceInitMs: number): Budget {
  const override = intEnv(env, 'WARM_WEB_SLIM_DEADLINE_MS');
  if (override === 0) throw new SlimLoadError('warm-web slim: WARM_WEB_SLIM_DEADLINE_MS="0" must be a positive number of milliseconds');
  if (override !== undefined) return { ms: override, source: `${override} ms (WARM_WEB_SLIM_DEADLINE_MS)`, onDemand: false };
  const kind = env.AWS_LAMBDA_INITIALIZATION_TYPE;
  const long = kind === 'provisioned-concurrency' || kind === 'snap-start' ? `the budget of a ${kind} INIT`
    : fs.lstatSync(note, { throwIfNoEntry: false }) ? 'the budget of an INIT after one that ran out of time' : undefined;
  if (long) return { ms: LONG_DEADLINE_MS - sinceInitMs, source: `${LONG_DEADLINE_MS} ms from INIT's start (${long})`, onDemand: false };
  return {
    ms: DEFAULT_DEADLINE_MS - sinceInitMs,
    source: `${DEFAULT_DEADLINE_MS} ms from INIT's start (the INIT budget; WARM_WEB_SLIM_DEADLINE_MS overrides it)`,
    onDemand: true,
  };
}

export class SlimLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SlimLoadError';
  }
}

/** One attempt failed; `retry` says whether another attempt could help. */
class Fail extends Error {
  constructor(message: string, readonly retry = true) {
    super(message);
  }
}

interface SlimIndex {
  readonly format: string;
  readonly v: number;
  readonly mtime: number;
  readonly unpacked: number;
  readonly files: number;
  readonly shards: Array<[number, number, number, string]>;
}

// ---------------------------------------------------------------------------------------------------
// S3 GetObject with SigV4

function quote(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function xmlTag(text: string, tag: string): string | undefined {
  const m = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(text);
  return m?.[1];
}

export class S3Object {
  readonly https: boolean;
  readonly host: string;
  readonly port: number | undefined;
  readonly path: string;
  readonly hostHeader: string;
  readonly region: string;
  private readonly accessKey?: string;
  private readonly secretKey?: string;
  private readonly token?: string;
  private signing?: [string, Buffer];
  private readonly agent: http.Agent;
  private readonly live = new Set<http.ClientRequest>();
  /** Set by abort(): every request in flight was destroyed, and every later one fails with this. */
  aborted: Fail | undefined;

  constructor(readonly bucket: string, readonly key: string, env: SlimEnv) {
    this.region = env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
    this.accessKey = env.AWS_ACCESS_KEY_ID;
    this.secretKey = env.AWS_SECRET_ACCESS_KEY;
    this.token = env.AWS_SESSION_TOKEN;
    const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL;
    const quotedKey = key.split('/').map(quote).join('/');
    if (endpoint) {
      const url = new URL(endpoint);
      this.https = url.protocol === 'https:';
      this.host = url.hostname.replace(/^\[(.*)\]$/, '$1');
      this.port = url.port ? Number(url.port) : undefined;
      this.path = `${url.pathname.replace(/\/+$/, '')}/${quote(bucket)}/${quotedKey}`;
      this.hostHeader = url.host;
    } else if (bucket.includes('.')) {
      this.https = true;
      this.host = `s3.${this.region}.amazonaws.com`;
      this.port = undefined;
      this.path = `/${quote(bucket)}/${quotedKey}`;
      this.hostHeader = this.host;
    } else {
      this.https = true;
      this.host = `${bucket}.s3.${this.region}.amazonaws.com`;
      this.port = undefined;
      this.path = `/${quotedKey}`;
      this.hostHeader = this.host;
    }
    this.agent = this.https ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  }

  where(): string {
    return `s3://${this.bucket}/${this.key}`;
  }

  /** The headers of GET bytes=first-last (last '' = to the end), SigV4-signed when there are credentials. */
  headers(first: number, last: number | '', now = new Date()): Record<string, string> {
    const headers: Record<string, string> = { host: this.hostHeader, range: `bytes=${first}-${last}` };
    if (!this.accessKey || !this.secretKey) return headers;
    const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
    const day = amzDate.slice(0, 8);
    headers['x-amz-content-sha256'] = EMPTY_SHA256;
    headers['x-amz-date'] = amzDate;
    if (this.token) headers['x-amz-security-token'] = this.token;
    const names = Object.keys(headers).sort();
    const canonical = ['GET', this.path, '', names.map((n) => `${n}:${headers[n].trim()}\n`).join(''), names.join(';'), EMPTY_SHA256].join('\n');
    const scope = `${day}/${this.region}/s3/aws4_request`;
    const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
    if (!this.signing || this.signing[0] !== day) {
      let k = createHmac('sha256', `AWS4${this.secretKey}`).update(day).digest();
      for (const part of [this.region, 's3', 'aws4_request']) k = createHmac('sha256', k).update(part).digest();
      this.signing = [day, k];
    }
    const signature = createHmac('sha256', this.signing[1]).update(toSign).digest('hex');
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${this.accessKey}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
    return headers;
  }

  /** Sends the ranged GET; resolves with the response once it is known to be the range asked for. */
  get(first: number, last: number | ''): Promise<{ req: http.ClientRequest; res: http.IncomingMessage }> {
    return new Promise((resolve, reject) => {
      if (this.aborted) {
        reject(this.aborted);
        return;
      }
      const { host: _host, ...headers } = this.headers(first, last);
      const options: http.RequestOptions = {
        host: this.host,
        port: this.port,
        path: this.path,
        method: 'GET',
        agent: this.agent,
        headers: { ...headers, host: this.hostHeader },
      };
      const req = (this.https ? https : http).request(options, (res) => {
        if (res.statusCode === 206) {
          resolve({ req, res });
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', () => undefined);
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status === 200) {
            reject(new Fail(`GET bytes=${first}-${last}: HTTP 200: the server ignored the Range header`, false));
            return;
          }
          const code = xmlTag(body, 'Code') ?? `HTTP ${status}`;
          const message = xmlTag(body, 'Message') ?? body.trim().slice(0, 200);
          reject(new Fail(`GET bytes=${first}-${last}: ${code}: ${message}`, status >= 500 || status === 408 || status === 429));
        });
      });
      req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error(`no data for ${TIMEOUT_MS / 1000} s`)));
      req.on('error', (e) => reject(asFail(e)));
      this.live.add(req);
      req.on('close', () => this.live.delete(req));
      req.end();
    });
  }

  /** Ends every request in flight (their readers fail) and refuses new ones, with `why`. */
  abort(why: Fail): void {
    this.aborted = why;
    for (const req of this.live) req.destroy();
  }

  close(): void {
    this.agent.destroy();
  }
}

function asFail(e: unknown, root?: string): Fail {
  if (e instanceof Fail) return e;
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOSPC') {
    return new Fail(`no space left on the device of ${root ? path.dirname(root) : 'the temporary directory'} while unpacking (raise the function's ephemeral storage)`, false);
  }
  return new Fail(`${err?.code ? `${err.code}: ` : ''}${err instanceof Error ? err.message : String(e)}`);
}

// ---------------------------------------------------------------------------------------------------
// Index

export function parseIndex(head: Buffer, expectedSha256: string, expectedSize?: number): { index: SlimIndex; length: number } {
  if (head.length < 26 || head[0] !== 0x1f || head[1] !== 0x8b || head[2] !== 8 || head[3] !== 4 || head[12] !== 0x57 || head[13] !== 0x57) {
    throw new Fail('not a warm-web slim archive (no index member at the start)', false);
  }
  const length = 16 + head.readUInt16LE(14) + 10;
  if (head.length < length) throw new Fail('truncated index member');
  const member = head.subarray(0, length);
  const digest = createHash('sha256').update(member).digest('hex');
  if (digest !== expectedSha256) {
    throw new Fail(`SHA-256 mismatch: the archive's index hashes to ${digest}, WARM_WEB_SLIM_SHA256 is ${expectedSha256}`);
  }
  const index = JSON.parse(member.subarray(16, length - 10).toString('utf8')) as SlimIndex;
  if (index.format !== FORMAT || index.v !== VERSION) {
    throw new Fail(`unsupported archive format ${JSON.stringify(index.format)} v${index.v}`, false);
  }
  const size = length + index.shards.reduce((n, s) => n + s[0], 0);
  if (expectedSize !== undefined && size !== expectedSize) {
    throw new Fail(`the index describes ${size} bytes, WARM_WEB_SLIM_SIZE is ${expectedSize}`, false);
  }
  return { index, length };
}

// ---------------------------------------------------------------------------------------------------
// A streaming tar reader that writes what it reads

const O_CREATE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | (fs.constants.O_NOFOLLOW ?? 0);
const SLASH = 0x2f;
const MARKER_NAME = Buffer.from(MARKER);

function unsafe(what: string, name: Buffer, target?: Buffer): Fail {
  const t = target ? ` -> ${JSON.stringify(target.toString('utf8'))}` : '';
  return new Fail(`${what}: ${JSON.stringify(name.toString('utf8'))}${t}`, false);
}

const show = (name: Buffer): string => JSON.stringify(name.toString('utf8'));

/** A relative name of plain components: no `..`, `.` or empty ones (a lexical walk is then the real one), not the marker. */
function checkName(name: Buffer): void {
  if (name.length === 0 || name[0] === SLASH || name.includes(0x5c)) throw unsafe('unsafe path in archive', name);
  if (name.toString('latin1').split('/').some((part) => part === '..' || part === '.' || part === '')) throw unsafe('unsafe path in archive', name);
  if (name.equals(MARKER_NAME)) throw unsafe('reserved name in archive', name);
}

function checkLink(name: Buffer, target: Buffer): void {
  if (target.length === 0 || target[0] === SLASH) throw unsafe('unsafe symlink in archive', name, target);
  let depth = name.toString('latin1').split('/').length - 1;
  for (const part of target.toString('latin1').split('/')) {
    if (part === '..') {
      if (--depth < 0) throw unsafe('symlink leaves the tree', name, target);
    } else if (part !== '' && part !== '.') {
      depth++;
    }
  }
}

/** A file system error met while creating an entry, as what it says about the archive when it says something. */
function entryError(e: unknown, name: Buffer): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EEXIST') return unsafe('duplicate entry in archive', name);
  if (code === 'ENOTDIR') return unsafe('unsafe path in archive (a file where it needs a directory)', name);
  return e;
}

function cstring(h: Buffer, start: number, end: number): Buffer {
  const field = h.subarray(start, end);
  const nul = field.indexOf(0);
  return nul < 0 ? field : field.subarray(0, nul);
}

function octal(h: Buffer, start: number, end: number): number {
  const s = cstring(h, start, end).toString('latin1').trim();
  return s === '' ? 0 : parseInt(s, 8);
}

/**
 * Reads one shard's tar stream and writes its directories and files under `root` as they arrive. It
 * creates no symlink (they are collected in `links`, for after every shard is verified): the tree it
 * writes into holds only real directories and files, so no write can leave it. Every header's size is
 * checked against what is left of the shard before anything is written for it.
 */
class Unpacker {
  private pending: Buffer = Buffer.alloc(0);
  private fd = -1;
  private remaining = 0;
  private skip = 0;
  private paxBody: Buffer[] | undefined;
  private paxLeft = 0;
  private pax: Map<string, Buffer> | undefined;
  private ended = false;
  /** Tar bytes read so far, and where the header being handled ends. */
  private fed = 0;
  private at = 0;
  /** What is being read, for an error at the shard's end. */
  private inside = '';
  entries = 0;
  files = 0;
  bytes = 0;
  readonly dirs: Buffer[] = [];
  /** [name, target] of the shard's symlinks, in archive order. */
  readonly links: Array<[Buffer, Buffer]> = [];

  constructor(private readonly root: Buffer, private readonly mtime: number, private readonly fixMode: boolean,
    private readonly shard: number, private readonly tarBytes: number) {}

  feed(data: Buffer): void {
    const n = data.length;
    const base = this.fed;
    this.fed += n;
    let pos = 0;
    while (pos < n) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, n - pos);
        this.write(data, pos, take);
        pos += take;
        this.remaining -= take;
        if (this.remaining === 0) this.closeFile();
        continue;
      }
      if (this.paxLeft > 0) {
        const take = Math.min(this.paxLeft, n - pos);
        this.paxBody!.push(data.subarray(pos, pos + take));
        pos += take;
        this.paxLeft -= take;
        if (this.paxLeft === 0) this.paxDone();
        continue;
      }
      if (this.skip > 0) {
        const take = Math.min(this.skip, n - pos);
        pos += take;
        this.skip -= take;
        continue;
      }
      let header: Buffer;
      if (this.pending.length > 0 || n - pos < BLOCK) {
        const need = BLOCK - this.pending.length;
        const take = Math.min(need, n - pos);
        this.pending = Buffer.concat([this.pending, data.subarray(pos, pos + take)]);
        pos += take;
        if (this.pending.length < BLOCK) continue;
        header = this.pending;
        this.pending = Buffer.alloc(0);
      } else {
        header = data.subarray(pos, pos + BLOCK);
        pos += BLOCK;
      }
      this.at = base + pos;
      this.header(header);
    }
  }

  finish(): void {
    if (this.remaining || this.skip || this.paxLeft || this.pax || this.pending.length) {
      throw new Fail(`shard ${this.shard} ends inside ${this.pending.length ? 'a tar header' : this.inside}`, false);
    }
  }

  closeQuietly(): void {
    if (this.fd >= 0) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // already failing
      }
      this.fd = -1;
    }
  }

  /** Refuses a header whose content (`size`, padded) does not fit what is left of the shard. */
  private fits(what: string, size: number): void {
    if (!Number.isSafeInteger(size) || size < 0) throw new Fail(`shard ${this.shard}: corrupt tar header (size of ${what})`, false);
    const left = this.tarBytes - this.at;
    if (size + ((BLOCK - (size % BLOCK)) % BLOCK) > left) {
      throw new Fail(`tar entry ${what} in shard ${this.shard} declares ${size} bytes, more than the ${left} bytes left in the shard`, false);
    }
  }

  private header(h: Buffer): void {
    const zero = h.equals(ZERO_BLOCK);
    if (this.ended || zero) {
      if (!zero) throw new Fail(`shard ${this.shard}: data after the end-of-archive blocks`, false);
      this.ended = true;
      return;
    }
    if (h.toString('latin1', 257, 263) !== 'ustar\u0000') throw new Fail(`shard ${this.shard}: corrupt tar header (no ustar magic)`, false);
    let size = octal(h, 124, 136);
    const kind = h[156];
    if (kind === 0x78) { // 'x' pax header for the next entry
      this.inside = 'a pax header';
      this.fits('(a pax header)', size);
      if (size > MAX_PAX) throw new Fail(`shard ${this.shard}: a pax header of ${size} bytes (at most ${MAX_PAX})`, false);
      this.paxBody = [];
      this.paxLeft = size;
      this.skip = (BLOCK - (size % BLOCK)) % BLOCK;
      if (size === 0) this.paxDone();
      return;
    }
    const pax = this.pax;
    this.pax = undefined;
    let name = cstring(h, 0, 100);
    const prefix = cstring(h, 345, 500);
    if (prefix.length > 0) name = Buffer.concat([prefix, Buffer.from('/'), name]);
    if (pax) {
      name = pax.get('path') ?? name;
      if (pax.has('size')) size = Number(pax.get('size')!.toString('latin1'));
    }
    this.entries++;
    if (kind === 0x35) { // '5' directory
      while (name.length > 0 && name[name.length - 1] === SLASH) name = name.subarray(0, name.length - 1);
      checkName(name);
      const p = this.pathOf(name);
      try {
        fs.mkdirSync(p, 0o755);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        try {
          if (code === 'ENOENT') fs.mkdirSync(p, { recursive: true, mode: 0o755 });
          // A file's parent, made before this entry's shard came: not a duplicate unless it is no directory.
          else if (code !== 'EEXIST' || !fs.lstatSync(p).isDirectory()) throw e;
        } catch (e2) {
          throw entryError(e2, name);
        }
      }
      this.dirs.push(p);
    } else if (kind === 0x30 || kind === 0) { // '0' regular file
      checkName(name);
      this.inside = `the entry ${show(name)}`;
      this.fits(show(name), size);
      const mode = octal(h, 100, 108) & 0o777;
      const p = this.pathOf(name);
      let fd: number;
      try {
        try {
          fd = fs.openSync(p, O_CREATE, mode);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          // Its directory's entry is in another shard that is still being unpacked.
          fs.mkdirSync(parentOf(p), { recursive: true, mode: 0o755 });
          fd = fs.openSync(p, O_CREATE, mode);
        }
      } catch (e) {
        throw entryError(e, name);
      }
      if (this.fixMode) fs.fchmodSync(fd, mode);
      this.fd = fd;
      this.files++;
      this.bytes += size;
      this.skip = (BLOCK - (size % BLOCK)) % BLOCK;
      this.remaining = size;
      if (size === 0) this.closeFile();
    } else if (kind === 0x32) { // '2' symlink
      checkName(name);
      const target = pax?.get('linkpath') ?? cstring(h, 157, 257);
      checkLink(name, target);
      this.links.push([name, target]);
    } else {
      throw new Fail(`unsupported tar entry type ${JSON.stringify(String.fromCharCode(kind))} for ${show(name)}`, false);
    }
  }

  private pathOf(name: Buffer): Buffer {
    return Buffer.concat([this.root, name]);
  }

  private paxDone(): void {
    const body = Buffer.concat(this.paxBody!);
    const records = new Map<string, Buffer>();
    let pos = 0;
    while (pos < body.length) {
      const space = body.indexOf(0x20, pos);
      const length = parseInt(body.toString('latin1', pos, space), 10);
      if (!(space > pos) || !(length > 0)) throw new Fail(`shard ${this.shard}: corrupt pax header`, false);
      const record = body.subarray(space + 1, pos + length - 1);
      const eq = record.indexOf(0x3d);
      records.set(record.toString('utf8', 0, eq), record.subarray(eq + 1));
      pos += length;
    }
    this.pax = records;
    this.paxBody = undefined;
  }

  private write(data: Buffer, offset: number, length: number): void {
    while (length > 0) {
      const written = fs.writeSync(this.fd, data, offset, length);
      if (written <= 0) throw Object.assign(new Error('short write'), { code: 'ENOSPC' });
      offset += written;
      length -= written;
    }
  }

  private closeFile(): void {
    const fd = this.fd;
    this.fd = -1;
    fs.futimesSync(fd, this.mtime, this.mtime);
    fs.closeSync(fd);
  }
}

function parentOf(p: Buffer): Buffer {
  return p.subarray(0, p.lastIndexOf(SLASH));
}

/**
 * Creates the archive's symlinks under `root` (a `/`-terminated path), once every shard is verified.
 * Each link's directories are walked one by one without following links: a link under another link,
 * or where the archive also put a file or directory, is refused, so no link is ever made through one.
 */
function createLinks(root: Buffer, links: ReadonlyArray<[Buffer, Buffer]>): void {
  const targets = new Map(links.map(([name, target]) => [name.toString('latin1'), target.toString('latin1')]));
  for (const [name, target] of links) checkResolved(name, target, targets);
  for (const [name, target] of links) {
    for (let slash = name.indexOf(SLASH); slash >= 0; slash = name.indexOf(SLASH, slash + 1)) {
      const dir = name.subarray(0, slash);
      const st = fs.lstatSync(Buffer.concat([root, dir]), { throwIfNoEntry: false });
      if (st?.isSymbolicLink()) throw unsafe(`unsafe path in archive (through the symlink ${show(dir)})`, name);
      if (!st?.isDirectory()) throw unsafe(`symlink whose directory ${show(dir)} is not in the archive`, name, target);
    }
    try {
      fs.symlinkSync(target, Buffer.concat([root, name]));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      throw unsafe('symlink where the archive has other entries', name, target);
    }
  }
}

/**
 * Refuses a link that leaves the tree once the links it passes through are followed (`c -> a/b/..` with
 * `a/b -> ..`), which the lexical check of each link alone cannot see. The walk follows the archive's
 * links as the kernel would; a name that is no link is taken as a directory, which can only err on the
 * side of refusing (the kernel would stop there).
 */
function checkResolved(name: Buffer, target: Buffer, targets: ReadonlyMap<string, string>): void {
  const dir = name.toString('latin1').split('/').slice(0, -1);
  const todo = target.toString('latin1').split('/');
  let hops = 0;
  while (todo.length > 0) {
    const part = todo.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (dir.pop() === undefined) throw unsafe('symlink leaves the tree through other links', name, target);
      continue;
    }
    const next = targets.get([...dir, part].join('/'));
    if (next === undefined) {
      dir.push(part);
    } else {
      // Kernels give up after 40 links in one lookup.
      if (++hops > 40) throw unsafe('symlink loop in archive', name, target);
      todo.unshift(...next.split('/'));
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// One attempt

interface Piece {
  readonly first: number;
  end: number;
  next: number;
  taken: boolean;
}

function split(cost: number[], parts: number): Piece[] {
  const total = cost.reduce((a, b) => a + b, 0);
  const pieces: Piece[] = [];
  let start = 0;
  let acc = 0;
  cost.forEach((c, i) => {
    acc += c;
    if (pieces.length < parts - 1 && acc >= (total * (pieces.length + 1)) / parts && i + 1 < cost.length) {
      pieces.push({ first: start, end: i + 1, next: start, taken: false });
      start = i + 1;
    }
  });
  pieces.push({ first: start, end: cost.length, next: start, taken: false });
  return pieces;
}

/** Reads an IncomingMessage chunk by chunk, with exact-length reads, and back-pressure. */
class Reader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  private error: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly res: http.IncomingMessage) {
    res.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.buffered += c.length;
      if (this.buffered > 1 << 20) res.pause();
      this.notify();
    });
    res.on('end', () => {
      this.done = true;
      this.notify();
    });
    res.on('error', (e) => {
      this.error = e;
      this.notify();
    });
    res.on('aborted', () => {
      this.error = new Error('the connection was closed mid-response');
      this.notify();
    });
    res.on('close', () => {
      if (!this.done && !this.error && !res.complete) this.error = new Error('the connection was closed mid-response');
      this.notify();
    });
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Up to `max` bytes, at least 1; undefined at the end of the body. */
  async read(max: number): Promise<Buffer | undefined> {
    while (this.chunks.length === 0) {
      if (this.error) throw this.error;
      if (this.done) return undefined;
      this.res.resume();
      await new Promise<void>((resolve) => { this.wake = resolve; });
    }
    let chunk = this.chunks[0];
    if (chunk.length > max) {
      this.chunks[0] = chunk.subarray(max);
      chunk = chunk.subarray(0, max);
    } else {
      this.chunks.shift();
    }
    this.buffered -= chunk.length;
    if (this.buffered <= 1 << 19) this.res.resume();
    return chunk;
  }

  async readExact(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      const c = await this.read(n - got);
      if (!c) throw new Fail(`the stream ended after ${got} of the index member's ${n} bytes`);
      parts.push(c);
      got += c.length;
    }
    return Buffer.concat(parts, n);
  }

  get complete(): boolean {
    return this.res.complete && this.chunks.length === 0;
  }
}

class Run {
  failure: Fail | undefined;
  files = 0;
  bytes = 0;
  fetched = 0;
  requests = 1;
  readonly dirs: Buffer[] = [];
  /** Each shard's symlinks, by shard: created in archive order once every shard is verified. */
  readonly links: Array<Array<[Buffer, Buffer]>>;
  readonly pieces: Piece[];
  private readonly offsets: number[] = [];
  private readonly cost: number[];
  private readonly fixMode: boolean;
  private readonly live = new Set<http.ClientRequest>();

  constructor(private readonly s3: S3Object, private readonly index: SlimIndex, indexLength: number, private readonly root: string, workers: number) {
    let offset = indexLength;
    for (const s of index.shards) {
      this.offsets.push(offset);
      offset += s[0];
    }
    this.cost = index.shards.map((s) => s[1] + 8192 * s[2]);
    this.pieces = split(this.cost, workers);
    this.links = index.shards.map(() => []);
    const umask = process.umask();
    this.fixMode = (umask & 0o755) !== 0;
  }

  fail(e: unknown): void {
    if (!this.failure) {
      this.failure = asFail(e, this.root);
      for (const req of this.live) req.destroy();
    }
  }

  firstPiece(): Piece {
    this.pieces[0].taken = true;
    return this.pieces[0];
  }

  /** An unstarted piece, else the back half of the running piece with the most unstarted work. */
  claim(): Piece | undefined {
    if (this.failure) return undefined;
    const free = this.pieces.find((p) => !p.taken);
    if (free) {
      free.taken = true;
      return free;
    }
    let best: Piece | undefined;
    let bestCost = 0;
    for (const p of this.pieces) {
      let left = 0;
      for (let i = p.next + 1; i < p.end; i++) left += this.cost[i];
      if (left > bestCost) {
        best = p;
        bestCost = left;
      }
    }
    if (!best) return undefined;
    let cut = best.end;
    let acc = 0;
    while (cut - 1 > best.next && acc + this.cost[cut - 1] <= bestCost / 2 + 1) {
      cut--;
      acc += this.cost[cut];
    }
    if (cut >= best.end) return undefined;
    const stolen: Piece = { first: cut, end: best.end, next: cut, taken: true };
    best.end = cut;
    this.pieces.push(stolen);
    return stolen;
  }

  async worker(first?: Piece, started?: { req: http.ClientRequest; reader: Reader }): Promise<void> {
    try {
      let piece = first;
      let pending = started;
      for (;;) {
        if (!piece) piece = this.claim();
        if (!piece) return;
        await this.fetch(piece, pending);
        piece = undefined;
        pending = undefined;
      }
    } catch (e) {
      this.fail(e);
    }
  }

  private async fetch(piece: Piece, started?: { req: http.ClientRequest; reader: Reader }): Promise<void> {
    let req: http.ClientRequest;
    let reader: Reader;
    if (started) {
      ({ req, reader } = started);
    } else {
      const last = this.offsets[piece.end - 1] + this.index.shards[piece.end - 1][0] - 1;
      const got = await this.s3.get(this.offsets[piece.first], last);
      this.requests++;
      req = got.req;
      reader = new Reader(got.res);
    }
    this.live.add(req);
    try {
      for (let i = piece.first; i < piece.end && !this.failure; i++) {
        piece.next = i;
        await this.shard(i, reader);
      }
    } finally {
      this.live.delete(req);
      // A response that ran on past this piece (stolen tail, the first open-ended GET) or failed.
      if (!reader.complete) req.destroy();
    }
  }

  private async shard(i: number, reader: Reader): Promise<void> {
    const [clen, ulen, entries, sha256] = this.index.shards[i];
    const digest: Hash = createHash('sha256');
    const unpacker = new Unpacker(Buffer.from(`${this.root}/`), this.index.mtime ?? 0, this.fixMode, i, ulen);
    const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024 });
    let out = 0;
    let broken: unknown;
    const inflated = new Promise<void>((resolve) => {
      gunzip.on('data', (data: Buffer) => {
        if (broken !== undefined || this.failure) return;
        try {
          out += data.length;
          if (out > ulen) throw new Fail(`shard ${i} inflates past its ${ulen} bytes`, false);
          unpacker.feed(data);
        } catch (e) {
          broken = e;
          unpacker.closeQuietly();
        }
      });
      gunzip.on('error', (e) => {
        if (broken === undefined) broken = e;
        unpacker.closeQuietly();
        resolve();
      });
      gunzip.on('end', () => resolve());
    });
    try {
      let left = clen;
      while (left > 0) {
        if (this.failure) return;
        const chunk = await reader.read(Math.min(left, 256 * 1024)).catch((e: Error) => {
          throw new Fail(`shard ${i}: ${e.message}`);
        });
        if (!chunk) throw new Fail(`shard ${i}: the stream ended ${left} bytes early`);
        left -= chunk.length;
        digest.update(chunk);
        if (broken === undefined && !gunzip.write(chunk)) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              gunzip.off('drain', done);
              gunzip.off('error', done);
              resolve();
            };
            gunzip.on('drain', done);
            gunzip.on('error', done);
          });
        }
      }
      gunzip.end();
      await inflated;
      const got = digest.digest('hex');
      if (got !== sha256) {
        throw new Fail(`shard ${i}: SHA-256 mismatch (expected ${sha256}, got ${got}): the archive was corrupted in transit or in S3`);
      }
      if (this.failure) return;
      // From here on the bytes are the ones the index names: what is wrong with them is wrong in the
      // archive itself, and another attempt would meet it again.
      if (broken !== undefined) {
        if ((broken as NodeJS.ErrnoException).code?.startsWith('Z_')) throw new Fail(`shard ${i} does not inflate: ${(broken as Error).message}`, false);
        const f = asFail(broken, this.root);
        throw broken instanceof Fail || !f.retry ? f : new Fail(`shard ${i}: ${f.message}`);
      }
      if (out !== ulen) throw new Fail(`shard ${i}: inflated ${out} of ${ulen} bytes`, false);
      unpacker.finish();
      if (unpacker.entries !== entries) throw new Fail(`shard ${i}: ${unpacker.entries} entries, the index says ${entries}`, false);
    } finally {
      unpacker.closeQuietly();
      gunzip.destroy();
    }
    this.files += unpacker.files;
    this.bytes += unpacker.bytes;
    this.dirs.push(...unpacker.dirs);
    this.links[i] = unpacker.links;
    this.fetched += clen;
  }
}

interface Stats {
  readonly bytes: number;
  readonly files: number;
  readonly unpacked: number;
  readonly requests: number;
}

async function attempt(s3: S3Object, sha256: string, size: number | undefined, unpackedExpected: number | undefined,
  base: string, final: string, workers: number): Promise<Stats> {
  let tmp: string | undefined;
  let req: http.ClientRequest | undefined;
  try {
    // One open-ended GET: the index member first, then the first piece of shards.
    const got = await s3.get(0, size ? size - 1 : '');
    req = got.req;
    const reader = new Reader(got.res);
    let head = await reader.readExact(16);
    head = Buffer.concat([head, await reader.readExact(head.readUInt16LE(14) + 10)]);
    const { index, length } = parseIndex(head, sha256, size);
    if (unpackedExpected !== undefined && index.unpacked !== unpackedExpected) {
      throw new Fail(`the index says ${index.unpacked} bytes unpacked, WARM_WEB_SLIM_UNPACKED is ${unpackedExpected}`, false);
    }
    const st = fs.statfsSync(base);
    const free = st.bavail * st.bsize;
    if (free < index.unpacked) {
      throw new Fail(`no space: the code needs ${(index.unpacked / 1e6).toFixed(1)} MB unpacked, ${(free / 1e6).toFixed(1)} MB free in ${base} (raise the function's ephemeral storage)`, false);
    }
    tmp = path.join(base, `.tmp-${sha256.slice(0, 16)}-${process.pid}-${randomBytes(4).toString('hex')}`);
    fs.mkdirSync(tmp, 0o755);
    const run = new Run(s3, index, length, tmp, workers);
    const first = run.firstPiece();
    const all = [run.worker(first, { req, reader })];
    req = undefined;
    for (let n = 1; n < Math.min(workers, run.pieces.length); n++) all.push(run.worker());
    await Promise.all(all);
    if (run.failure) throw run.failure;
    if (run.files !== index.files || run.bytes !== index.unpacked) {
      throw new Fail(`unpacked ${run.files} files / ${run.bytes} bytes, the index says ${index.files} / ${index.unpacked}`, false);
    }
    // Every shard is verified: now the links (none existed while anything was written), then the
    // marker that binds the tree to this hash ('wx': never through a link), then the rename.
    if ((process.umask() & 0o755) !== 0) for (const d of run.dirs) fs.chmodSync(d, 0o755);
    createLinks(Buffer.from(`${tmp}/`), run.links.flat());
    fs.writeFileSync(path.join(tmp, MARKER), JSON.stringify({ sha256, bucket: s3.bucket, key: s3.key, files: run.files, bytes: run.bytes }), { flag: 'wx' });
    try {
      fs.renameSync(tmp, final);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'EEXIST' && code !== 'ENOTEMPTY') || !complete(final, sha256)) throw e;
      // Another process finished first: theirs is as good as ours.
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    return { bytes: run.fetched + length, files: run.files, unpacked: run.bytes, requests: run.requests };
  } catch (e) {
    req?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    throw s3.aborted ?? asFail(e, tmp ?? base);
  }
}

/** Whether `dir` is a real directory (not a link) whose marker (a file, not a link) names `sha256`. */
function complete(dir: string, sha256: string): boolean {
  if (!fs.lstatSync(dir, { throwIfNoEntry: false })?.isDirectory()) return false;
  let fd: number | undefined;
  try {
    fd = fs.openSync(path.join(dir, MARKER), fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0));
    return (JSON.parse(fs.readFileSync(fd, 'utf8')) as { sha256?: string }).sha256 === sha256;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function removeStale(base: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(base);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith('.tmp-')) continue;
    const pid = Number(name.split('-')[2]);
    if (!Number.isInteger(pid)) continue;
    if (pid !== process.pid) {
      try {
        process.kill(pid, 0);
        continue; // a live process is still writing it
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') continue;
      }
    }
    fs.rmSync(path.join(base, name), { recursive: true, force: true });
  }
}

function intEnv(env: SlimEnv, name: string): number | undefined {
  const value = env[name];
  if (value === undefined || value === '') return undefined;
  if (!/^\d+$/.test(value)) throw new SlimLoadError(`warm-web slim: ${name}=${JSON.stringify(value)} is not an integer`);
  return Number(value);
}

export function defaultWorkers(): number {
  const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(2, Math.min(8, cpus + 1));
}

const loaded = new Map<string, Promise<string>>();

/**
 * Makes the slim code archive available under `$TMPDIR/warm-web/<sha256>` and resolves with that
 * directory (the code root the shim loads the app from). Reuses a complete copy from earlier in this
 * process or sandbox.
 */
export function materialise(env: SlimEnv = process.env, options: MaterialiseOptions = {}): Promise<string> {
  const bucket = env.WARM_WEB_SLIM_BUCKET;
  const key = env.WARM_WEB_SLIM_KEY;
  const sha256 = (env.WARM_WEB_SLIM_SHA256 ?? '').toLowerCase();
  if (!bucket || !key || !/^[0-9a-f]{64}$/.test(sha256)) {
    return Promise.reject(new SlimLoadError('warm-web slim: WARM_WEB_SLIM_BUCKET, WARM_WEB_SLIM_KEY and a 64-hex-digit WARM_WEB_SLIM_SHA256 must all be set'));
  }
  const base = path.join(env.TMPDIR || '/tmp', 'warm-web');
  const final = path.join(base, sha256);
  let promise = loaded.get(final);
  if (!promise) {
    promise = load(env, bucket, key, sha256, base, final, options);
    loaded.set(final, promise);
    promise.catch(() => loaded.delete(final));
  }
  return promise;
}

/** Tells the next INIT in this sandbox that this load ran out of time (best effort). */
function leaveNote(note: string): void {
  try {
    fs.closeSync(fs.openSync(note, fs.constants.O_WRONLY | fs.constants.O_CREAT | (fs.constants.O_NOFOLLOW ?? 0), 0o600));
  } catch {
    // the next INIT gets the short budget again
  }
}

async function load(env: SlimEnv, bucket: string, key: string, sha256: string, base: string, final: string,
  options: MaterialiseOptions): Promise<string> {
  const size = intEnv(env, 'WARM_WEB_SLIM_SIZE');
  const unpacked = intEnv(env, 'WARM_WEB_SLIM_UNPACKED');
  if (complete(final, sha256)) return final;
  const note = path.join(base, OUT_OF_TIME + sha256);
  const budget = options.signal ? undefined : deadlineFor(env, note, performance.now());
  const started = process.hrtime.bigint();
  const s3 = new S3Object(bucket, key, env);
  try {
    fs.mkdirSync(base, { recursive: true });
  } catch (e) {
    throw new SlimLoadError(`warm-web slim: cannot load ${s3.where()}: cannot create ${base}: ${(e as Error).message}`);
  }
  removeStale(base);
  if (fs.lstatSync(final, { throwIfNoEntry: false })) {
    // Another INIT may have published its tree since the first look (removing stale copies takes a
    // while): look again, so that a complete tree is never moved away from the process using it.
    if (complete(final, sha256)) return final;
    // Not ours (ours only ever appear complete): move it out of the way, then delete it.
    const aside = path.join(base, `.tmp-${sha256.slice(0, 16)}-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      fs.renameSync(final, aside);
    } catch (e) {
      throw new SlimLoadError(`warm-web slim: cannot load ${s3.where()}: ${final} exists, is incomplete and cannot be moved: ${(e as Error).message}`);
    }
    fs.rmSync(aside, { recursive: true, force: true });
  }
  const workers = options.workers ?? defaultWorkers();
  const causes: string[] = [];
  let stats: Stats | undefined;
  let attempts = 0;
  // One deadline for the whole load, retry included: a server that trickles never ends it otherwise.
  const end = (why: string): void => s3.abort(new Fail(why, false));
  const deadline = budget && setTimeout(() => end(`the load did not finish within its deadline of ${budget.source}`), Math.max(0, budget.ms));
  const onAbort = (): void => end(String(options.signal!.reason));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  try {
    while (!stats) {
      attempts++;
      try {
        stats = await attempt(s3, sha256, size, unpacked, base, final, workers);
      } catch (e) {
        const f = asFail(e);
        causes.push(f.message);
        if (!f.retry || attempts === 2) {
          // Only the on-demand budget is too short for a load that Lambda would let run longer.
          if (s3.aborted && budget?.onDemand) leaveNote(note);
          throw new SlimLoadError(`warm-web slim: cannot load ${s3.where()} (WARM_WEB_SLIM_SHA256=${sha256}) after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${causes.join('; then: ')}`);
        }
      }
    }
  } finally {
    clearTimeout(deadline);
    options.signal?.removeEventListener('abort', onAbort);
    s3.close();
  }
  fs.rmSync(note, { force: true });
  const loadMs = Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10;
  if (options.emit ?? true) process.stdout.write(`${JSON.stringify(metricDocument(env, loadMs, stats, attempts, key))}\n`);
  return final;
}

export function metricDocument(env: SlimEnv, loadMs: number, stats: Stats, attempts: number, key: string): Record<string, unknown> {
  return {
    _aws: {
      Timestamp: Date.now(),
      CloudWatchMetrics: [{
        Namespace: 'WarmWeb',
        Dimensions: [['FunctionName']],
        Metrics: [{ Name: 'SlimLoadMs', Unit: 'Milliseconds' }, { Name: 'SlimBytes', Unit: 'Bytes' }],
      }],
    },
    FunctionName: env.AWS_LAMBDA_FUNCTION_NAME ?? '',
    SlimLoadMs: loadMs,
    SlimBytes: stats.bytes,
    SlimKey: key,
    SlimFiles: stats.files,
    SlimUnpackedBytes: stats.unpacked,
    SlimRequests: stats.requests,
    SlimAttempts: attempts,
    Runtime: 'node',
  };
}
