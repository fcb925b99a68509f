// The Node slim-code loader against hostile archives (test/slim/hostile.ts) and bad days: a replaced
// shard, racing INITs, a trickling S3, a failed load. moto's S3 server on loopback; the second-INIT and
// failed-load cases run the layer's bundle in real processes, as Lambda's Node runtime loads it.
/* eslint-disable no-bitwise */ // open(2) flags are bit fields
import { type ChildProcess, execFile, execFileSync, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { build } from 'esbuild';
import { deadlineFor, materialise, type SlimEnv } from '../../../runtime/node/slim';
import { CASES, craft, type Crafted, type HostileCase } from '../../slim/hostile';

jest.setTimeout(120_000);

const BUCKET = 'warm-web-slim-faults';
const RUNNER = path.join(__dirname, 'support', 'lambda-runner.js');

function motoPython(): string | undefined {
  const candidates = [process.env.WARM_WEB_MOTO_PYTHON, path.join(__dirname, '..', '..', '..', '.venv', 'bin', 'python'), 'python3'];
  return candidates.find((python) => python && spawnSync(python, ['-c', 'import moto.server'], { stdio: 'ignore' }).status === 0);
}

const PYTHON = motoPython();
if (!PYTHON && process.env.CI === 'true') {
  throw new Error('no Python with moto on this machine (set WARM_WEB_MOTO_PYTHON): the slim fault tests cannot run');
}
const withServer = PYTHON ? describe : describe.skip;

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

function request(url: string, method: string, body?: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** An HTTP server on loopback that counts requests and closes with its connections. */
class CountingServer {
  requests = 0;
  readonly server: http.Server;
  constructor(respond: (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void) {
    this.server = http.createServer((req, res) => respond(req, res, ++this.requests));
  }
  async url(): Promise<string> {
    return `http://127.0.0.1:${await listen(this.server)}`;
  }
  close(): void {
    this.server.closeAllConnections();
    this.server.close();
  }
}

let moto: ChildProcess | undefined;
let endpoint: string;
let work: string;
let bundleDir: string;
const crafted = new Map<HostileCase, Crafted>();

const keyOf = (c: HostileCase): string => `faults/${c}.slim`;

function envFor(c: HostileCase, tmp: string, overrides: SlimEnv = {}): SlimEnv {
  const a = crafted.get(c)!;
  return {
    WARM_WEB_SLIM_BUCKET: BUCKET,
    WARM_WEB_SLIM_KEY: keyOf(c),
    WARM_WEB_SLIM_SHA256: a.sha256,
    WARM_WEB_SLIM_SIZE: String(a.size),
    WARM_WEB_SLIM_UNPACKED: String(a.unpacked),
    AWS_ENDPOINT_URL: endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIDTEST',
    AWS_SECRET_ACCESS_KEY: 'secret',
    AWS_LAMBDA_FUNCTION_NAME: 'slim-faults-fn',
    TMPDIR: tmp,
    // The INIT budget counts from the process's start, which in this test process was long ago.
    WARM_WEB_SLIM_DEADLINE_MS: '120000',
    ...overrides,
  };
}

/** A new box (a directory of its own) with TMPDIR inside it, so that anything written outside TMPDIR shows. */
function newBox(): { box: string; tmp: string } {
  const box = fs.mkdtempSync(path.join(work, 'box-'));
  const tmp = path.join(box, 'tmp');
  fs.mkdirSync(tmp);
  return { box, tmp };
}

/** Every path under `root`, links not followed. */
function everything(root: string): string[] {
  const out: string[] = [];
  const visit = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(root, r));
      out.push(st.isSymbolicLink() ? `${r} -> ${fs.readlinkSync(path.join(root, r))}` : r);
      if (st.isDirectory()) visit(r);
    }
  };
  visit('');
  return out;
}

async function loadFails(env: SlimEnv, parts: string[], workers?: number): Promise<string> {
  const error = await materialise(env, { workers, emit: false }).then(() => undefined, (e: Error) => e);
  expect(error?.name).toBe('SlimLoadError');
  for (const part of parts) expect(error?.message).toContain(part);
  return error!.message;
}

interface ShimRun {
  /** One per event: the handler's result, or `{ error }`. */
  readonly results: unknown[];
  /** The EMF lines of slim loads. */
  readonly slimLoads: number;
  readonly stderr: string;
}

/** Runs the layer's bundle in a new process (a new INIT) on `events`, with the app `app.handler`. */
function runShim(env: SlimEnv, events: unknown[]): Promise<ShimRun> {
  const full = { PATH: process.env.PATH, WARM_WEB_APP: 'app.handler', WARM_WEB_APP_KIND: 'handler', LAMBDA_TASK_ROOT: '/nonexistent', ...env };
  return new Promise((resolve) => {
    execFile(process.execPath, [RUNNER, path.join(bundleDir, 'index.js'), JSON.stringify(events)], { env: full }, (_error, stdout, stderr) => {
      const results: unknown[] = [];
      let slimLoads = 0;
      for (const line of stdout.split('\n').filter(Boolean)) {
        if (line.startsWith('RESULT ')) results.push(JSON.parse(line.slice(7)));
        else if (line.startsWith('ERROR ')) results.push({ error: line.slice(6) });
        else if (line.includes('"SlimLoadMs"')) slimLoads++;
      }
      resolve({ results, slimLoads, stderr });
    });
  });
}

withServer('Node slim loader: hostile archives and bad days', () => {
  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'slim-faults-'));
    bundleDir = path.join(work, 'layer', 'warm-web');
    // The layer's two files, as the bundle:node-shim task builds them.
    const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', logLevel: 'silent' } as const;
    await build({ ...common, entryPoints: [path.join(__dirname, '..', '..', '..', 'runtime', 'node', 'index.ts')], external: ['./slim'], outfile: path.join(bundleDir, 'index.js') });
    await build({ ...common, entryPoints: [path.join(__dirname, '..', '..', '..', 'runtime', 'node', 'slim.ts')], outfile: path.join(bundleDir, 'slim.js') });

    const probe = net.createServer();
    const port = await listen(probe);
    await new Promise((r) => probe.close(r));
    endpoint = `http://127.0.0.1:${port}`;
    moto = spawn(PYTHON!, ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    for (let tries = 0; ; tries++) {
      try {
        await request(`${endpoint}/`, 'GET');
        break;
      } catch (e) {
        if (tries > 600) throw new Error(`moto server did not start: ${String(e)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(await request(`${endpoint}/${BUCKET}`, 'PUT')).toBe(200);
    for (const c of CASES) {
      const file = path.join(work, `${c}.slim`);
      crafted.set(c, craft(c, file));
      expect(await request(`${endpoint}/${BUCKET}/${keyOf(c)}`, 'PUT', fs.readFileSync(file))).toBe(200);
    }
  });

  afterAll(() => {
    moto?.kill();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('the good archive loads (the baseline for the others)', async () => {
    const { tmp } = newBox();
    const dir = await materialise(envFor('good', tmp), { emit: false });
    expect(everything(dir)).toEqual(['.warm-web-slim', 'app.js', 'app.py', 'link.py -> app.py', 'pkg', 'pkg/__init__.py', 'pkg/data.bin']);
  });

  test('a symlink chain (l -> ., l/x -> .., l/l/l/y -> ../../..) is refused and nothing lands outside', async () => {
    const { box, tmp } = newBox();
    await loadFails(envFor('symlink-chain', tmp), ['unsafe path in archive (through the symlink "l"): "l/x"', 'after 1 attempt']);
    expect(everything(box)).toEqual(['tmp', 'tmp/warm-web']);
  });

  test('a duplicate entry is a format error: not retried', async () => {
    const { box, tmp } = newBox();
    await loadFails(envFor('duplicate-entry', tmp), ['duplicate entry in archive: "app.py"', 'after 1 attempt']);
    expect(everything(box)).toEqual(['tmp', 'tmp/warm-web']);
  });

  test('an entry cut by the end of its shard is a format error: not retried', async () => {
    const { tmp } = newBox();
    await loadFails(envFor('entry-cut-by-shard-end', tmp), ['tar entry "big.txt" in shard 0 declares 2048 bytes, more than the 1024 bytes left in the shard', 'after 1 attempt'], 1);
  });

  test('a tar header declaring more than its shard holds is refused before anything is written for it', async () => {
    const { box, tmp } = newBox();
    await loadFails(envFor('size-lie', tmp), ['tar entry "huge.bin" in shard 1 declares 1073741824 bytes, more than the', 'after 1 attempt']);
    expect(everything(box)).toEqual(['tmp', 'tmp/warm-web']);
  });

  test.each([
    ['dot-link', 'unsafe path in archive: "./up"'],
    ['marker-entry', 'reserved name in archive: ".warm-web-slim"'],
    ['link-over-entry', 'symlink where the archive has other entries: "lib" -> "pkg"'],
    ['pax-bomb', 'shard 0: a pax header of 100016 bytes (at most 65536)'],
    ['shard-not-gzip', 'shard 0 does not inflate: incorrect header check'],
    ['link-through-link', 'symlink leaves the tree through other links: "c" -> "a/b/.."'],
  ] as Array<[HostileCase, string]>)('%s is refused, not retried, and leaves nothing', async (c, cause) => {
    const { box, tmp } = newBox();
    await loadFails(envFor(c, tmp), [`after 1 attempt: ${cause}`]);
    expect(everything(box)).toEqual(['tmp', 'tmp/warm-web']);
  });

  test('a link at the final path is not trusted, whatever its marker says, and what it points at is left alone', async () => {
    const { box, tmp } = newBox();
    const sha = crafted.get('good')!.sha256;
    const elsewhere = path.join(box, 'elsewhere');
    fs.mkdirSync(elsewhere);
    fs.writeFileSync(path.join(elsewhere, '.warm-web-slim'), JSON.stringify({ sha256: sha }));
    fs.writeFileSync(path.join(elsewhere, 'app.js'), 'exports.handler = async () => ({ app: "elsewhere" });\n');
    fs.mkdirSync(path.join(tmp, 'warm-web'));
    fs.symlinkSync(elsewhere, path.join(tmp, 'warm-web', sha));
    const dir = await materialise(envFor('good', tmp), { emit: false });
    expect(fs.lstatSync(dir).isDirectory()).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'app.js'), 'utf8')).toContain('good');
    expect(fs.readdirSync(elsewhere).sort()).toEqual(['.warm-web-slim', 'app.js']);
  });

  test('a replaced shard plants nothing: the next INIT in the same sandbox does not load the attacker\'s module', async () => {
    const { box, tmp } = newBox();
    // replaced-shard keeps the good archive's index, so its WARM_WEB_SLIM_SHA256 is the good one.
    expect(crafted.get('replaced-shard')!.sha256).toBe(crafted.get('good')!.sha256);
    const env = envFor('replaced-shard', tmp);
    const first = await runShim(env, [{}]);
    expect(first.results).toEqual([{ error: expect.stringContaining('SHA-256 mismatch') }]);
    expect(everything(box)).toEqual(['tmp', 'tmp/warm-web']);
    const second = await runShim(env, [{}]);
    expect(second.results).toEqual([{ error: expect.stringContaining('SHA-256 mismatch') }]);
    expect(second.results).not.toContainEqual({ app: 'attacker' });
    expect(everything(box)).toEqual(['tmp', 'tmp/warm-web']);
    // The good archive (the same hash) in its place: the next INIT in this sandbox loads the good app.
    const third = await runShim({ ...env, WARM_WEB_SLIM_KEY: keyOf('good') }, [{}]);
    expect(third.results).toEqual([{ app: 'good' }]);
    expect(third.slimLoads).toBe(1);
  });

  test('a failed load does not break the environment: the invoke fails with the cause, the next one loads again', async () => {
    const { tmp } = newBox();
    // S3 answers the first GET with AccessDenied, then serves the good archive (moto behind a proxy).
    const flaky = new CountingServer((req, res, n) => {
      if (n === 1) {
        res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
        return;
      }
      const up = http.request(`${endpoint}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    });
    const url = await flaky.url();
    try {
      const run = await runShim(envFor('good', tmp, { AWS_ENDPOINT_URL: url }), [{}, {}, {}]);
      expect(run.results).toEqual([
        { error: expect.stringMatching(/^warm-web slim: cannot load s3:\/\/warm-web-slim-faults\/faults\/good\.slim .*after 1 attempt: GET bytes=0-\d+: AccessDenied: Access Denied$/) },
        { app: 'good' },
        { app: 'good' },
      ]);
      expect(run.slimLoads).toBe(1);
    } finally {
      flaky.close();
    }
  });

  test('a racing INIT that finished first is not moved aside: its tree is re-checked before anything is moved', async () => {
    const { tmp } = newBox();
    const sha = crafted.get('good')!.sha256;
    const final = path.join(tmp, 'warm-web', sha);
    // The loser's first look at the marker blocks on a FIFO until this test has published a complete
    // tree there (as the winning INIT would), so the winner finishes between the loser's two looks.
    fs.mkdirSync(final, { recursive: true });
    execFileSync('mkfifo', [path.join(final, '.warm-web-slim')]);
    const winner = newBox();
    const published = await materialise(envFor('good', winner.tmp), { emit: false });
    const s3 = new CountingServer((_req, res) => res.writeHead(500).end());
    const url = await s3.url();
    const script = `require(${JSON.stringify(path.join(bundleDir, 'slim.js'))}).materialise(process.env)`
      + ".then((d) => console.log('OK ' + d), (e) => console.log('ERR ' + e.message))";
    const loser = new Promise<string>((resolve) => {
      execFile(process.execPath, ['-e', script], { env: { ...envFor('good', tmp, { AWS_ENDPOINT_URL: url }) } }, (_e, stdout) => resolve(stdout.trim()));
    });
    try {
      let fd: number | undefined;
      while (fd === undefined) {
        try {
          // Succeeds once the loser has opened the FIFO for reading.
          fd = fs.openSync(path.join(final, '.warm-web-slim'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENXIO') throw e;
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      fs.renameSync(final, path.join(tmp, 'replaced'));
      fs.renameSync(published, final);
      const inode = fs.statSync(final).ino;
      fs.writeSync(fd, 'not the marker');
      fs.closeSync(fd);
      expect(await loser).toBe(`OK ${final}`);
      expect(fs.statSync(final).ino).toBe(inode);
      expect(s3.requests).toBe(0);
    } finally {
      s3.close();
    }
  });

  test('a trickling S3 (1 byte every 5 s) meets the whole load\'s deadline; the error names it', async () => {
    const { tmp } = newBox();
    const size = crafted.get('good')!.size;
    const archive = fs.readFileSync(path.join(work, 'good.slim'));
    const timers: NodeJS.Timeout[] = [];
    const slow = new CountingServer((_req, res) => {
      res.writeHead(206, { 'content-length': size, 'content-range': `bytes 0-${size - 1}/${size}` });
      let sent = 0;
      const send = (): void => {
        res.write(archive.subarray(sent, ++sent));
      };
      send();
      timers.push(setInterval(send, 5000));
    });
    const url = await slow.url();
    try {
      await loadFails(envFor('good', tmp, { AWS_ENDPOINT_URL: url, WARM_WEB_SLIM_DEADLINE_MS: '300' }),
        ['after 1 attempt: the load did not finish within its deadline of 300 ms (WARM_WEB_SLIM_DEADLINE_MS)']);
      expect(slow.requests).toBe(1);
      expect(fs.readdirSync(path.join(tmp, 'warm-web'))).toEqual([]);
    } finally {
      timers.forEach(clearInterval);
      slow.close();
    }
  }, 15_000);

  test('in the layer, the load runs past INIT and the invoke waiting for it bounds it by its own time', async () => {
    const { tmp } = newBox();
    const size = crafted.get('good')!.size;
    const archive = fs.readFileSync(path.join(work, 'good.slim'));
    const timers: NodeJS.Timeout[] = [];
    // The first GET trickles (one byte every 5 s); later ones are served by moto.
    const s3 = new CountingServer((req, res, n) => {
      if (n === 1) {
        res.writeHead(206, { 'content-length': size, 'content-range': `bytes 0-${size - 1}/${size}` });
        let sent = 0;
        const send = (): void => {
          res.write(archive.subarray(sent, ++sent));
        };
        send();
        timers.push(setInterval(send, 5000));
        return;
      }
      const up = http.request(`${endpoint}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    });
    const url = await s3.url();
    try {
      // No deadline from the environment: the layer's load has none of its own.
      const env: SlimEnv = { ...envFor('good', tmp, { AWS_ENDPOINT_URL: url }), WARM_WEB_TEST_REMAINING_MS: '1500' };
      delete env.WARM_WEB_SLIM_DEADLINE_MS;
      const run = await runShim(env, [{}, {}]);
      expect(run.results).toEqual([
        { error: expect.stringMatching(/after 1 attempt: the load did not finish within the 1000 ms this invoke had left$/) },
        { app: 'good' },
      ]);
      expect(run.slimLoads).toBe(1);
      // A load the layer ends is the invoke's business, not INIT's: it leaves no note.
      expect(fs.readdirSync(path.join(tmp, 'warm-web')).filter((n) => n.startsWith('.out-of-time-'))).toEqual([]);
    } finally {
      timers.forEach(clearInterval);
      s3.close();
    }
  });

  test('WARM_WEB_SLIM_DEADLINE_MS must be a positive integer of milliseconds', async () => {
    const { tmp } = newBox();
    for (const bad of ['abc', '0']) {
      await loadFails(envFor('good', tmp, { WARM_WEB_SLIM_DEADLINE_MS: bad }), [`WARM_WEB_SLIM_DEADLINE_MS=${JSON.stringify(bad)}`]);
    }
  });

  test('the budget: 9.5 s from INIT\'s start on demand, 125 s for provisioned concurrency and after an INIT that ran out of time', () => {
    const note = path.join(newBox().tmp, 'note');
    expect(deadlineFor({}, note, 1000)).toMatchObject({ ms: 8500, onDemand: true });
    expect(deadlineFor({ AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand' }, note, 1000)).toMatchObject({ ms: 8500, onDemand: true });
    expect(deadlineFor({ AWS_LAMBDA_INITIALIZATION_TYPE: 'provisioned-concurrency' }, note, 1000))
      .toEqual({ ms: 124_000, source: '125000 ms from INIT\'s start (the budget of a provisioned-concurrency INIT)', onDemand: false });
    fs.writeFileSync(note, '');
    expect(deadlineFor({}, note, 1000)).toMatchObject({ ms: 124_000, onDemand: false });
    expect(deadlineFor({ WARM_WEB_SLIM_DEADLINE_MS: '250' }, note, 1000)).toEqual({ ms: 250, source: '250 ms (WARM_WEB_SLIM_DEADLINE_MS)', onDemand: false });
  });

  test('a load that ran out of the on-demand budget leaves a note: the INIT after it gets the long budget, and a load removes it', async () => {
    const { tmp } = newBox();
    const env = envFor('good', tmp);
    delete env.WARM_WEB_SLIM_DEADLINE_MS;
    // INIT (the process) started 20 s ago: the on-demand budget is spent before the load begins.
    const now = jest.spyOn(performance, 'now').mockReturnValue(20_000);
    try {
      await loadFails(env, ['after 1 attempt: the load did not finish within its deadline of 9500 ms from INIT\'s start (the INIT budget;']);
      const sha = crafted.get('good')!.sha256;
      expect(fs.readdirSync(path.join(tmp, 'warm-web'))).toEqual([`.out-of-time-${sha}`]);
      const dir = await materialise(env, { emit: false });
      expect(fs.readFileSync(path.join(dir, 'app.js'), 'utf-8')).toContain('good');
      expect(fs.readdirSync(path.join(tmp, 'warm-web'))).toEqual([sha]);
    } finally {
      now.mockRestore();
    }
  });
});
