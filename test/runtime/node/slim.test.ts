// The Node slim-code loader (runtime/node/slim.ts) against a real S3-compatible server (moto's, started
// here from whichever Python on this machine has moto) on loopback, on archives made by the real packer.
/* eslint-disable no-bitwise */ // file modes, gzip and pyc header fields are bit fields
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { type PackResult, packDirectory } from '../../../lib/private/slim-pack';
import { MARKER, materialise, S3Object, type SlimEnv } from '../../../runtime/node/slim';
import { listing } from '../../slim/listing';

jest.setTimeout(120_000);

const BUCKET = 'warm-web-slim-node-tests';

function motoPython(): string | undefined {
  const candidates = [process.env.WARM_WEB_MOTO_PYTHON, path.join(__dirname, '..', '..', '..', '.venv', 'bin', 'python'), 'python3',
    path.join(os.homedir(), '.pyenv', 'shims', 'python3')];
  for (const python of candidates) {
    if (python && spawnSync(python, ['-c', 'import moto.server'], { stdio: 'ignore' }).status === 0) return python;
  }
  return undefined;
}

const PYTHON = motoPython();
if (!PYTHON && process.env.CI === 'true') {
  throw new Error('no Python with moto on this machine (set WARM_WEB_MOTO_PYTHON): the slim loader tests cannot run');
}
const withServer = PYTHON ? describe : describe.skip;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

function request(url: string, method: string, body?: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { 'content-type': 'application/octet-stream' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Forwards to the server; the first `cuts` connections are cut after `cutAfter` response bytes, and with
 * `die` the proxy stops listening then too, like a server that went away mid-stream. */
class DyingProxy {
  readonly server: net.Server;
  cutsDone = 0;
  private readonly sockets = new Set<net.Socket>();
  constructor(target: number, cutAfter: number, private readonly cuts: number, private readonly die: boolean) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(target, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      const cut = this.cutsDone < this.cuts;
      if (cut) this.cutsDone++;
      let sent = 0;
      client.on('data', (d) => upstream.write(d));
      upstream.on('data', (d: Buffer) => {
        if (cut && sent + d.length >= cutAfter) {
          client.write(d.subarray(0, cutAfter - sent), () => {
            client.destroy();
            upstream.destroy();
            if (this.die) this.close();
          });
          sent = cutAfter;
          return;
        }
        sent += d.length;
        client.write(d);
      });
      for (const s of [client, upstream]) {
        s.on('error', () => undefined);
        s.on('close', () => {
          client.destroy();
          upstream.destroy();
        });
      }
    });
  }
  listen(): Promise<string> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`)));
  }
  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }
}

let moto: ChildProcess | undefined;
let endpoint: string;
let motoPort: number;
let work: string;
let tree: string;
let packed: PackResult;
let archive: Buffer;
let key: string;

function write(rel: string, data: string | Buffer = '', mode = 0o644): void {
  const file = path.join(tree, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
  fs.chmodSync(file, mode);
}

function envFor(tmp: string, overrides: SlimEnv = {}): SlimEnv {
  return {
    WARM_WEB_SLIM_BUCKET: BUCKET,
    WARM_WEB_SLIM_KEY: key,
    WARM_WEB_SLIM_SHA256: packed.sha256,
    WARM_WEB_SLIM_SIZE: String(packed.size),
    WARM_WEB_SLIM_UNPACKED: String(packed.unpackedBytes),
    AWS_ENDPOINT_URL: endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIDTEST',
    AWS_SECRET_ACCESS_KEY: 'secret',
    AWS_SESSION_TOKEN: 'token',
    AWS_LAMBDA_FUNCTION_NAME: 'slim-node-fn',
    TMPDIR: tmp,
    // The INIT budget counts from the process's start, which in this test process was long ago.
    WARM_WEB_SLIM_DEADLINE_MS: '120000',
    ...overrides,
  };
}

function newTmp(): string {
  return fs.mkdtempSync(path.join(work, 'tmp-'));
}

function leftovers(tmp: string): string[] {
  const base = path.join(tmp, 'warm-web');
  return fs.existsSync(base) ? fs.readdirSync(base).sort() : [];
}

let written: string[] = [];
function emf(): Array<Record<string, unknown>> {
  return written.filter((l) => l.startsWith('{"_aws"')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

beforeEach(() => {
  written = [];
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(...String(chunk).split('\n').filter(Boolean));
    return true;
  });
});

afterEach(() => {
  jest.restoreAllMocks();
});

withServer('Node slim loader against S3 on loopback', () => {
  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'slim-node-'));
    tree = path.join(work, 'tree');
    // A tree of every kind of entry, with a few thousand files.
    for (let i = 0; i < 2000; i++) write(`node_modules/pkg${i % 40}/lib/f${i}.js`, `module.exports = ${i};\n`.repeat(1 + (i % 50)));
    write('index.js', 'exports.handler = async () => ({ slim: true });\n');
    write('bin/cli', '#!/usr/bin/env node\n', 0o755);
    write('données/café.txt', 'é');
    write('日本語/ファイル.js', 'module.exports = 1;\n');
    write('empty.txt');
    // Incompressible, so the archive is megabytes and a connection can be cut in the middle of it.
    write('big.bin', Buffer.concat(Array.from({ length: 62_500 }, (_, i) => createHash('sha256').update(String(i)).digest())));
    write(`deep/${'a'.repeat(80)}/${'b'.repeat(80)}/${'c'.repeat(110)}.js`, 'long');
    fs.mkdirSync(path.join(tree, 'empty-dir', 'deeper'), { recursive: true });
    fs.symlinkSync('index.js', path.join(tree, 'main.js'));
    fs.symlinkSync('../index.js', path.join(tree, 'bin', 'up.js'));
    fs.symlinkSync('node_modules/pkg1', path.join(tree, 'pkg-link'));
    const file = path.join(work, 'code.slim');
    packed = packDirectory(tree, file, { shardBytes: 128 * 1024 });
    archive = fs.readFileSync(file);
    key = `slim/${packed.sha256}.slim`;

    motoPort = await freePort();
    endpoint = `http://127.0.0.1:${motoPort}`;
    moto = spawn(PYTHON!, ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(motoPort)], { stdio: 'ignore' });
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await request(`${endpoint}/`, 'GET');
        break;
      } catch {
        if (Date.now() > deadline) throw new Error('moto server did not start in 60 s');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(await request(`${endpoint}/${BUCKET}`, 'PUT')).toBe(200);
    expect(await request(`${endpoint}/${BUCKET}/${key}`, 'PUT', archive)).toBe(200);
  });

  afterAll(() => {
    moto?.kill();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('round trip: the tree the packer saw, first on disk, one EMF line', async () => {
    const tmp = newTmp();
    const dir = await materialise(envFor(tmp));
    expect(dir).toBe(path.join(tmp, 'warm-web', packed.sha256));
    expect(packed.files).toBeGreaterThan(2000);
    expect(packed.shards).toBeGreaterThan(10);
    const got = listing(dir, 'exact');
    expect(got[MARKER]).toMatch(/^file /);
    delete got[MARKER];
    expect(got).toEqual(listing(tree, 'exact'));
    expect(fs.statSync(path.join(dir, 'bin/cli')).mode & 0o777).toBe(0o755);
    expect(fs.readlinkSync(path.join(dir, 'pkg-link'))).toBe('node_modules/pkg1');
    expect(fs.readFileSync(path.join(dir, 'données/café.txt'), 'utf8')).toBe('é');
    expect(fs.statSync(path.join(dir, 'index.js')).mtimeMs).toBe(315532800 * 1000);
    expect(leftovers(tmp)).toEqual([packed.sha256]);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    expect(await (require(path.join(dir, 'index.js')) as { handler: () => Promise<unknown> }).handler()).toEqual({ slim: true });
    const [line, ...more] = emf();
    expect(more).toEqual([]);
    expect(line).toMatchObject({
      _aws: { CloudWatchMetrics: [{ Namespace: 'WarmWeb', Dimensions: [['FunctionName']], Metrics: [{ Name: 'SlimLoadMs', Unit: 'Milliseconds' }, { Name: 'SlimBytes', Unit: 'Bytes' }] }] },
      FunctionName: 'slim-node-fn',
      SlimBytes: packed.size,
      SlimFiles: packed.files,
      SlimAttempts: 1,
      Runtime: 'node',
    });
    expect(line.SlimLoadMs).toBeGreaterThan(0);
  });

  test.each([1, 6])('the same tree with %i worker(s)', async (workers) => {
    const tmp = newTmp();
    const dir = await materialise(envFor(tmp), { workers, emit: false });
    const got = listing(dir, 'exact');
    delete got[MARKER];
    expect(got).toEqual(listing(tree, 'exact'));
  });

  test('a warm environment reuses its tree without fetching; so does a new INIT in the same /tmp', async () => {
    const tmp = newTmp();
    const proxy = new DyingProxy(motoPort, Infinity, 0, false);
    const url = await proxy.listen();
    const first = await materialise(envFor(tmp, { AWS_ENDPOINT_URL: url }));
    proxy.close();
    expect(await materialise(envFor(tmp, { AWS_ENDPOINT_URL: url }))).toBe(first);
    // A new INIT: a fresh copy of the module, with S3 unreachable. The marker is enough.
    await jest.isolateModulesAsync(async () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const fresh = require('../../../runtime/node/slim') as typeof import('../../../runtime/node/slim');
      expect(await fresh.materialise(envFor(tmp, { AWS_ENDPOINT_URL: 'http://127.0.0.1:9' }))).toBe(first);
    });
    expect(emf()).toHaveLength(1);
  });

  test('a directory without the marker is replaced, and dead INITs\' temporary dirs are removed', async () => {
    const tmp = newTmp();
    const final = path.join(tmp, 'warm-web', packed.sha256);
    fs.mkdirSync(path.join(final, 'half'), { recursive: true });
    fs.mkdirSync(path.join(tmp, 'warm-web', '.tmp-0123456789abcdef-999999999-dead', 'x'), { recursive: true });
    expect(await materialise(envFor(tmp), { emit: false })).toBe(final);
    expect(fs.existsSync(path.join(final, 'half'))).toBe(false);
    expect(leftovers(tmp)).toEqual([packed.sha256]);
  });

  async function fails(env: SlimEnv, parts: string[], workers?: number): Promise<string> {
    let message = '';
    await materialise(env, { workers }).then(() => {
      throw new Error('materialise succeeded');
    }, (e: Error) => {
      message = e.message;
      expect(e.name).toBe('SlimLoadError');
    });
    expect(message).toContain(`s3://${BUCKET}/${env.WARM_WEB_SLIM_KEY}`);
    for (const part of parts) expect(message).toContain(part);
    expect(leftovers(env.TMPDIR!)).toEqual([]);
    expect(emf()).toEqual([]);
    return message;
  }

  test('the server dying mid-stream: one retry, then an error naming the cause, and nothing left', async () => {
    const proxy = new DyingProxy(motoPort, 200_000, 1, true);
    const url = await proxy.listen();
    const message = await fails(envFor(newTmp(), { AWS_ENDPOINT_URL: url }), ['after 2 attempts', 'ECONNREFUSED'], 3);
    expect(message).toContain('; then: ');
    expect(proxy.cutsDone).toBe(1);
  });

  test('a connection cut once is retried, and the second attempt loads the tree', async () => {
    const proxy = new DyingProxy(motoPort, 200_000, 1, false);
    const url = await proxy.listen();
    const tmp = newTmp();
    const dir = await materialise(envFor(tmp, { AWS_ENDPOINT_URL: url }), { workers: 3 });
    proxy.close();
    const got = listing(dir, 'exact');
    delete got[MARKER];
    expect(got).toEqual(listing(tree, 'exact'));
    expect(emf()[0]).toMatchObject({ SlimAttempts: 2 });
    expect(leftovers(tmp)).toEqual([packed.sha256]);
  });

  test('a corrupted byte is caught by the shard\'s hash', async () => {
    const bad = Buffer.from(archive);
    bad[Math.floor(bad.length / 2)] ^= 0x40;
    const badKey = `${key}.corrupt`;
    expect(await request(`${endpoint}/${BUCKET}/${badKey}`, 'PUT', bad)).toBe(200);
    await fails(envFor(newTmp(), { WARM_WEB_SLIM_KEY: badKey }), ['SHA-256 mismatch', 'corrupted in transit or in S3', 'after 2 attempts']);
  });

  test('a wrong hash, a wrong size and a missing key', async () => {
    await fails(envFor(newTmp(), { WARM_WEB_SLIM_SHA256: 'f'.repeat(64) }), [`index hashes to ${packed.sha256}`, 'after 2 attempts']);
    await fails(envFor(newTmp(), { WARM_WEB_SLIM_SIZE: String(packed.size - 1) }), ['WARM_WEB_SLIM_SIZE', 'after 1 attempt']);
    await fails(envFor(newTmp(), { WARM_WEB_SLIM_KEY: 'slim/missing.slim' }), ['NoSuchKey', 'after 1 attempt']);
    await expect(materialise({ WARM_WEB_SLIM_BUCKET: 'b' })).rejects.toThrow(/WARM_WEB_SLIM_BUCKET, WARM_WEB_SLIM_KEY/);
  });

  test('a full disk while unpacking (a 1 MiB tmpfs): a clear error and nothing left on it', async () => {
    const mnt = fs.mkdtempSync(path.join(work, 'tiny-'));
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]).status !== 0) {
      console.warn('cannot mount a tmpfs here: the ENOSPC case is not exercised');
      return;
    }
    try {
      // 600 KB of content passes the free-space check; 600 files need 600 pages of a 256-page tmpfs.
      const src = path.join(work, 'small');
      for (let i = 0; i < 600; i++) {
        fs.mkdirSync(path.join(src, `d${i % 10}`), { recursive: true });
        fs.writeFileSync(path.join(src, `d${i % 10}`, `f${i}.txt`), Buffer.alloc(1000, i % 256));
      }
      const small = packDirectory(src, path.join(work, 'small.slim'), { shardBytes: 64 * 1024 });
      const smallKey = `slim/${small.sha256}.slim`;
      expect(await request(`${endpoint}/${BUCKET}/${smallKey}`, 'PUT', fs.readFileSync(path.join(work, 'small.slim')))).toBe(200);
      const env = envFor(mnt, {
        WARM_WEB_SLIM_KEY: smallKey,
        WARM_WEB_SLIM_SHA256: small.sha256,
        WARM_WEB_SLIM_SIZE: String(small.size),
        WARM_WEB_SLIM_UNPACKED: String(small.unpackedBytes),
      });
      await fails(env, ['no space left on the device', 'ephemeral storage', 'after 1 attempt']);
      const st = fs.statfsSync(mnt);
      expect(st.bfree).toBe(st.blocks);
      // Bigger than the disk: refused before anything is fetched.
      const big = {
        WARM_WEB_SLIM_KEY: key,
        WARM_WEB_SLIM_SHA256: packed.sha256,
        WARM_WEB_SLIM_SIZE: String(packed.size),
        WARM_WEB_SLIM_UNPACKED: String(packed.unpackedBytes),
      };
      await fails({ ...env, ...big }, ['no space: the code needs', 'after 1 attempt']);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});

describe('SigV4', () => {
  test('matches the AWS documentation\'s GET Object example', () => {
    const obj = new S3Object('examplebucket', 'test.txt', {
      AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE', AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    });
    (obj as unknown as { hostHeader: string }).hostHeader = 'examplebucket.s3.amazonaws.com';
    expect(obj.headers(0, 9, new Date('2013-05-24T00:00:00Z')).authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, '
      + 'SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, '
      + 'Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41');
    obj.close();
  });

  test('endpoint forms', () => {
    const dotted = new S3Object('b.with.dots', 'k/é x', { AWS_REGION: 'eu-west-1' });
    expect([dotted.host, dotted.path]).toEqual(['s3.eu-west-1.amazonaws.com', '/b.with.dots/k/%C3%A9%20x']);
    const local = new S3Object('bkt', 'a/b', { AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:4566/s3/' });
    expect([local.host, local.port, local.path, local.https]).toEqual(['127.0.0.1', 4566, '/s3/bkt/a/b', false]);
    expect(local.headers(0, 1).authorization).toBeUndefined();
    dotted.close();
    local.close();
  });
});
