// The pg read/write router against a real PostgreSQL primary + streaming hot standby on loopback, started
// by test/services/start-postgres.sh (and stopped at the end if this file started it). Which server ran a
// statement is reported by the statement itself (inet_server_port(), pg_is_in_recovery()).
//
// `pg` is the app's dependency, not the library's: it is found in the repo's node_modules, else in
// $WARM_WEB_PG_DIR or /tmp/wwpg (npm i --prefix /tmp/wwpg pg). Missing pg or PostgreSQL skips these tests
// with the reason, except under CI=true, where it fails them.
import { execFile, execFileSync } from 'child_process';
import { existsSync, mkdtempSync, rmSync } from 'fs';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'http';
import { createRequire } from 'module';
import type { AddressInfo } from 'net';
import { tmpdir } from 'os';
import * as path from 'path';
import { build } from 'esbuild';
import express from 'express';
import {
  createPgRouter, isReadOnlyStatement, type PgModule, type PgRouter, PgRouterConfigError, type PgRouterOptions,
  poolConfigsFromEnv, type PoolLike, type QueryConfig,
} from '../../../runtime/node/pg-router';

const ROOT = path.join(__dirname, '..', '..', '..');
const SERVICES = path.join(ROOT, 'test', 'services');
const CI = (process.env.CI ?? '').toLowerCase() === 'true';

function findPgDir(): string | undefined {
  for (const dir of [ROOT, process.env.WARM_WEB_PG_DIR, '/tmp/wwpg']) {
    if (dir === undefined) continue;
    try {
      createRequire(path.join(dir, 'noop.js')).resolve('pg');
      return dir;
    } catch {
      // next
    }
  }
  return undefined;
}

const PG_DIR = findPgDir();
const PG_INSTALLED = existsSync('/usr/lib/postgresql/15/bin/initdb');
const missing = [
  PG_DIR === undefined ? 'the pg package (add the devDependency, or npm i --prefix /tmp/wwpg pg)' : undefined,
  PG_INSTALLED ? undefined : 'PostgreSQL 15 (/usr/lib/postgresql/15/bin)',
].filter((m): m is string => m !== undefined);

type Env = Record<string, string>;

function runScript(name: string, ...args: string[]): Env {
  const out = execFileSync('bash', [path.join(SERVICES, name), ...args], { encoding: 'utf8', timeout: 180_000, stdio: ['ignore', 'pipe', 'pipe'] });
  return Object.fromEntries(out.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

function loadPg(): PgModule {
  return createRequire(path.join(PG_DIR!, 'noop.js'))('pg') as PgModule;
}

const SERVER = 'SELECT inet_server_port() AS port, pg_is_in_recovery() AS standby, pg_backend_pid() AS pid';

interface Server { port: number; standby: boolean; pid: number }

describe('statement classification', () => {
  test.each([
    ['SELECT 1', true],
    ['  select * from t where id = $1', true],
    ['/* hint */ -- c\n (SELECT a FROM t) UNION (SELECT b FROM u)', true],
    ['WITH x AS (SELECT 1) SELECT * FROM x', true],
    ['TABLE items', true],
    ['VALUES (1), (2)', true],
    ['SHOW search_path', true],
    ['SELECT last_update, updated_at FROM t', true],
    ['INSERT INTO t VALUES (1)', false],
    ['update t set a = 1', false],
    ['DELETE FROM t', false],
    ['WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d', false],
    ['SELECT * FROM t FOR UPDATE', false],
    ['SELECT * FROM t FOR NO KEY UPDATE', false],
    ['SELECT * FROM t FOR SHARE', false],
    ['SELECT * INTO copy FROM t', false],
    ["SELECT nextval('s')", false],
    ['SELECT pg_advisory_lock(1)', false],
    ["SELECT set_config('a', 'b', false)", false],
    ['BEGIN', false],
    ['SET search_path TO x', false],
    ['CREATE TABLE t (a int)', false],
    ['EXPLAIN ANALYZE DELETE FROM t', false],
  ])('%j is read-only: %s', (sql, expected) => {
    expect(isReadOnlyStatement(sql)).toBe(expected);
  });
});

describe('env contract', () => {
  const BASE = { DB_ENGINE: 'postgresql', DB_WRITER_HOST: 'writer.example', DB_NAME: 'app', DB_USER: 'app', DB_PASSWORD: 'pw' };
  const env = (changes: Record<string, string | undefined>) => ({ ...BASE, ...changes });

  test('writer and reader pools', () => {
    const configs = poolConfigsFromEnv(env({ DB_READER_HOST: 'reader.example:6432', DB_PORT: '5433' }));
    expect(configs.writer).toEqual({ host: 'writer.example', port: 5433, database: 'app', user: 'app', password: 'pw', connectionTimeoutMillis: 5000 });
    expect(configs.reader).toMatchObject({ host: 'reader.example', port: 6432 });
    expect(poolConfigsFromEnv(env({ DB_WRITER_HOST: '[::1]:7000' })).writer).toMatchObject({ host: '::1', port: 7000 });
    expect(poolConfigsFromEnv(env({})).reader).toBeUndefined();
  });

  test.each([
    ['no DB_WRITER_HOST', { DB_WRITER_HOST: undefined }, 'DB_WRITER_HOST is not set'],
    ['a blank DB_NAME', { DB_NAME: ' ' }, 'DB_NAME is not set'],
    ['no DB_USER', { DB_USER: undefined }, 'DB_USER is not set'],
    ['DB_ENGINE=mysql', { DB_ENGINE: 'mysql' }, 'DB_ENGINE must be postgresql for the pg router, got "mysql"'],
    ['a bad DB_PORT', { DB_PORT: 'x' }, 'DB_PORT must be a TCP port number, got "x"'],
    ['a bad reader port', { DB_READER_HOST: 'r:0' }, 'DB_READER_HOST must be a TCP port number, got "0"'],
    ['no credentials', { DB_PASSWORD: undefined }, 'set exactly one of DB_SECRET_ARN (Secrets Manager), DB_IAM_AUTH=true (IAM authentication) or DB_PASSWORD (plain); found none of them'],
    ['IAM and a password', { DB_IAM_AUTH: 'true' }, 'found DB_IAM_AUTH, DB_PASSWORD'],
    ['a secret and a password', { DB_SECRET_ARN: 'arn:x' }, 'found DB_SECRET_ARN, DB_PASSWORD'],
    ['DB_IAM_AUTH=perhaps', { DB_IAM_AUTH: 'perhaps' }, 'DB_IAM_AUTH must be true or false, got "perhaps"'],
  ])('%s fails naming the variable', (_title, changes, message) => {
    expect(() => poolConfigsFromEnv(env(changes))).toThrow(PgRouterConfigError);
    expect(() => poolConfigsFromEnv(env(changes))).toThrow(message);
  });

  test('IAM auth turns TLS on', () => {
    const configs = poolConfigsFromEnv(env({ DB_PASSWORD: undefined, DB_IAM_AUTH: 'true' }));
    expect(configs.writer.ssl).toEqual({ rejectUnauthorized: false });
    expect(typeof configs.writer.password).toBe('function');
  });

  test.each([
    ['a short secret', { secret: 'short' }, 'the read-your-writes secret (readYourWrites.secret or READ_YOUR_WRITES_SECRET) must be at least 16 characters, got 5'],
    ['a bad cookie name', { secret: 'a-secret-of-some-length', cookieName: 'a b' }, 'readYourWrites.cookieName must be a cookie name, got "a b"'],
    ['a zero Max-Age', { secret: 'a-secret-of-some-length', maxAgeSeconds: 0 }, 'readYourWrites.maxAgeSeconds must be a whole number of seconds from 1 to 3600, got 0'],
    ['a fractional Max-Age', { secret: 'a-secret-of-some-length', maxAgeSeconds: 1.5 }, 'got 1.5'],
  ])('readYourWrites with %s fails naming the option', (_title, readYourWrites, message) => {
    const pool = { query: async () => ({ rows: [], rowCount: 0, command: 'SELECT' }), connect: async () => { throw new Error('unused'); }, end: async () => undefined, on: () => undefined };
    expect(() => createPgRouter({ writer: pool, readYourWrites })).toThrow(PgRouterConfigError);
    expect(() => createPgRouter({ writer: pool, readYourWrites })).toThrow(message);
  });

  test('READ_YOUR_WRITES_SECRET is read from the env given', () => {
    const pool = { query: async () => ({ rows: [], rowCount: 0, command: 'SELECT' }), connect: async () => { throw new Error('unused'); }, end: async () => undefined, on: () => undefined };
    expect(() => createPgRouter({ writer: pool, env: { READ_YOUR_WRITES_SECRET: 'x' } })).toThrow('must be at least 16 characters, got 1');
  });

  test('a loader failure surfaces when the router is created', () => {
    expect(() => createPgRouter({ env: BASE, loadModule: () => { throw new PgRouterConfigError('cannot load pg'); } }))
      .toThrow('warm-web pg-router: cannot load pg');
  });
});

const live = missing.length === 0 ? describe : describe.skip;
if (missing.length > 0) {
  if (CI) {
    test('prerequisites for the pg router tests', () => {
      throw new Error(`missing under CI=true: ${missing.join(', ')}`);
    });
  } else {
    console.warn(`pg-router live tests skipped: missing ${missing.join(', ')}`);
  }
}

live('against a real primary and replica', () => {
  let services: Env;
  let startedHere = false;
  let primaryPort: number;
  let replicaPort: number;
  let pg: PgModule;
  const routers: PgRouter[] = [];

  const dbEnv = (changes: Record<string, string | undefined> = {}): Record<string, string | undefined> => ({
    DB_ENGINE: services.DB_ENGINE,
    DB_WRITER_HOST: services.DB_WRITER_HOST,
    DB_PORT: services.DB_PORT,
    DB_READER_HOST: services.DB_READER_HOST,
    DB_NAME: services.DB_NAME,
    DB_USER: services.DB_USER,
    DB_PASSWORD: services.DB_PASSWORD,
    ...changes,
  });
  const router = (options: PgRouterOptions = {}): PgRouter => {
    const created = createPgRouter({ pg, env: dbEnv(), ...options });
    routers.push(created);
    return created;
  };
  const server = async (r: PgRouter): Promise<Server> => (await r.query(SERVER)).rows[0] as unknown as Server;
  const name = () => `n-${Math.random().toString(16).slice(2, 10)}`;

  async function waitForReplica(r: PgRouter): Promise<void> {
    const pools = await r.ready();
    const lsn = (await pools.writer.query('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0].lsn;
    const reader = new pg.Pool({ host: '127.0.0.1', port: replicaPort, database: services.DB_NAME, user: services.DB_USER, password: services.DB_PASSWORD, max: 1 });
    try {
      for (let i = 0; i < 500; i++) {
        const caughtUp = (await reader.query('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn])).rows[0].ok;
        if (caughtUp) return;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error(`the replica did not replay ${String(lsn)}`);
    } finally {
      await reader.end();
    }
  }

  beforeAll(async () => {
    const out = runScript('start-postgres.sh');
    startedHere = out.WW_PG_STARTED === '1';
    services = out;
    primaryPort = Number(out.WW_PG_PRIMARY_PORT);
    replicaPort = Number(out.WW_PG_REPLICA_PORT);
    pg = loadPg();
    const setup = router();
    await setup.write('CREATE TABLE IF NOT EXISTS ww_node_items (id serial PRIMARY KEY, name text UNIQUE NOT NULL)');
    await setup.write(`CREATE OR REPLACE FUNCTION ww_node_touch(n text) RETURNS int LANGUAGE sql AS
      $$ INSERT INTO ww_node_items (name) VALUES (n) RETURNING 1 $$`);
    await waitForReplica(setup);
  }, 180_000);

  afterAll(async () => {
    await Promise.all(routers.map((r) => r.end()));
    if (startedHere) runScript('stop-postgres.sh');
  }, 60_000);

  test('reads go to the reader, writes to the writer', async () => {
    const r = router();
    expect(await server(r)).toMatchObject({ port: replicaPort, standby: true });
    const n = name();
    const inserted = await r.query('INSERT INTO ww_node_items (name) VALUES ($1) RETURNING inet_server_port() AS port', [n]);
    expect(inserted.rows[0].port).toBe(primaryPort);
    // A query config object is classified by its text too.
    expect((await r.query({ text: SERVER })).rows[0]).toMatchObject({ port: replicaPort });
  });

  test('read-your-writes inside a session, and only there', async () => {
    const r = router();
    const n = name();
    await r.session(async () => {
      expect(await server(r)).toMatchObject({ port: replicaPort });
      expect(r.hasWritten()).toBe(false);
      await r.query('INSERT INTO ww_node_items (name) VALUES ($1)', [n]);
      expect(r.hasWritten()).toBe(true);
      const read = await r.query('SELECT count(*)::int AS n, inet_server_port() AS port FROM ww_node_items WHERE name = $1', [n]);
      expect(read.rows[0]).toEqual({ n: 1, port: primaryPort });
    });
    // A new session (the next request) starts on the reader again; so does code outside any session.
    await r.session(async () => expect(await server(r)).toMatchObject({ port: replicaPort }));
    expect(await server(r)).toMatchObject({ port: replicaPort });
  });

  test('the middleware gives each request its own session', async () => {
    const r = router();
    const handle = (write: boolean) => new Promise<Server>((resolve, reject) => {
      r.middleware()({}, {}, () => {
        (async () => {
          if (write) await r.query('INSERT INTO ww_node_items (name) VALUES ($1)', [name()]);
          return server(r);
        })().then(resolve, reject);
      });
    });
    expect((await handle(true)).port).toBe(primaryPort);
    expect((await handle(false)).port).toBe(replicaPort);
  });

  test('transactions pin one writer connection, commit, and roll back on error', async () => {
    const r = router();
    const kept = name();
    const dropped = name();
    await r.session(async () => {
      const pids = await r.transaction(async (client) => {
        const inside = await server(r);
        await r.query('INSERT INTO ww_node_items (name) VALUES ($1)', [kept]);
        const nested = await r.transaction(async () => server(r));
        const direct = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
        expect(inside).toMatchObject({ port: primaryPort, standby: false });
        return [inside.pid, nested.pid, direct];
      });
      expect(new Set(pids).size).toBe(1);
      // The session has written: its reads stay on the writer.
      expect(await server(r)).toMatchObject({ port: primaryPort });
    });
    await expect(r.transaction(async () => {
      await r.query('INSERT INTO ww_node_items (name) VALUES ($1)', [dropped]);
      throw new Error('changed my mind');
    })).rejects.toThrow('changed my mind');
    const count = async (n: string) => (await r.write('SELECT count(*)::int AS n FROM ww_node_items WHERE name = $1', [n])).rows[0].n;
    expect(await count(kept)).toBe(1);
    expect(await count(dropped)).toBe(0);
  });

  test('a write disguised as a SELECT is refused by the reader and run on the writer', async () => {
    const r = router();
    const n = name();
    await r.session(async () => {
      expect((await r.query('SELECT ww_node_touch($1) AS one', [n])).rows[0].one).toBe(1);
      expect(r.hasWritten()).toBe(true);
    });
    expect((await r.write('SELECT count(*)::int AS n FROM ww_node_items WHERE name = $1', [n])).rows[0].n).toBe(1);
  });

  test('the reader itself refuses writes (the router never sends it one)', async () => {
    const reader = new pg.Pool({ host: '127.0.0.1', port: replicaPort, database: services.DB_NAME, user: services.DB_USER, password: services.DB_PASSWORD });
    try {
      await expect(reader.query('INSERT INTO ww_node_items (name) VALUES ($1)', [name()])).rejects.toMatchObject({ code: '25006' });
    } finally {
      await reader.end();
    }
  });

  test('without DB_READER_HOST every read goes to the writer', async () => {
    const r = router({ env: dbEnv({ DB_READER_HOST: undefined }) });
    expect(await server(r)).toMatchObject({ port: primaryPort, standby: false });
  });

  test('explicit pools', async () => {
    const writer = new pg.Pool({ host: '127.0.0.1', port: primaryPort, database: services.DB_NAME, user: services.DB_USER, password: services.DB_PASSWORD });
    const reader = new pg.Pool({ host: '127.0.0.1', port: replicaPort, database: services.DB_NAME, user: services.DB_USER, password: services.DB_PASSWORD });
    try {
      const r = createPgRouter({ writer, reader });
      expect(await server(r)).toMatchObject({ port: replicaPort });
      expect((await r.write(SERVER)).rows[0]).toMatchObject({ port: primaryPort });
      expect(await server(createPgRouter({ writer }))).toMatchObject({ port: primaryPort });
    } finally {
      await Promise.all([writer.end(), reader.end()]);
    }
  });

  test('reader down: reads go to the writer with one log line, and come back after the back-off', async () => {
    const lines: string[] = [];
    const r = router({ backoffMs: 500, log: (line) => lines.push(line) });
    expect(await server(r)).toMatchObject({ port: replicaPort });
    runScript('stop-postgres.sh', '--replica', '--immediate');
    try {
      for (let i = 0; i < 3; i++) {
        expect(await server(r)).toMatchObject({ port: primaryPort });
      }
      await new Promise((resolve) => setTimeout(resolve, 600));
      // Tried again after the back-off (refused this time): still the writer, still one line.
      expect(await server(r)).toMatchObject({ port: primaryPort });
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^warm-web pg-router: reader unreachable \(.+\); reads go to the writer, retrying every 0.5s$/);
      expect(r.readerStatus()).toMatchObject({ down: true, outages: 1 });
    } finally {
      runScript('start-postgres.sh');
    }
    await waitForReplica(r);
    const deadline = Date.now() + 5000;
    while ((await server(r)).port !== replicaPort) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(r.readerStatus()).toEqual({ down: false, outages: 1, retryInMs: 0 });
    expect(lines).toHaveLength(1);
  }, 60_000);

  test('DB_SECRET_ARN: the secret is fetched once, the user comes from it', async () => {
    const calls: string[] = [];
    const sdk = {
      SecretsManagerClient: class {
        async send(command: { input: { SecretId: string } }) {
          calls.push(command.input.SecretId);
          return { SecretString: JSON.stringify({ username: services.DB_USER, password: services.DB_PASSWORD }) };
        }
      },
      GetSecretValueCommand: class { constructor(readonly input: { SecretId: string }) {} },
    };
    const r = router({
      env: dbEnv({ DB_PASSWORD: undefined, DB_USER: undefined, DB_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:1:secret:db' }),
      loadModule: (module) => {
        expect(module).toBe('@aws-sdk/client-secrets-manager');
        return sdk;
      },
      // maxUses: 1 gives every query a new connection, so the password is asked for each time.
      pool: { max: 1, maxUses: 1 },
    });
    const users = [];
    for (let i = 0; i < 3; i++) {
      users.push((await r.write('SELECT current_user AS u, pg_backend_pid() AS pid, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl')).rows[0]);
    }
    expect(users.map((u) => [u.u, u.ssl])).toEqual([[services.DB_USER, true], [services.DB_USER, true], [services.DB_USER, true]]);
    expect(new Set(users.map((u) => u.pid)).size).toBe(3);
    expect(calls).toEqual(['arn:aws:secretsmanager:eu-west-1:1:secret:db']);
  });

  test('DB_SECRET_ARN: a failed read fails the query with the reason, and is tried again', async () => {
    let attempts = 0;
    const sdk = {
      SecretsManagerClient: class {
        async send() {
          attempts += 1;
          if (attempts === 1) throw new Error('AccessDeniedException: not allowed');
          return { SecretString: JSON.stringify({ username: services.DB_USER, password: services.DB_PASSWORD }) };
        }
      },
      GetSecretValueCommand: class { constructor(readonly input: unknown) {} },
    };
    const r = router({ env: dbEnv({ DB_PASSWORD: undefined, DB_USER: undefined, DB_SECRET_ARN: 'arn:s' }), loadModule: () => sdk });
    expect(attempts).toBe(0); // nothing is fetched before first use
    await expect(r.query('SELECT 1')).rejects.toThrow('warm-web pg-router: could not read the secret DB_SECRET_ARN=arn:s: AccessDeniedException: not allowed');
    expect((await r.query(SERVER)).rows[0]).toMatchObject({ port: replicaPort });
    expect(attempts).toBe(2);
  });

  test('DB_IAM_AUTH: a token per new connection, over TLS', async () => {
    const signers: unknown[] = [];
    let tokens = 0;
    const sdk = {
      Signer: class {
        constructor(config: unknown) { signers.push(config); }
        async getAuthToken() { tokens += 1; return services.DB_PASSWORD; }
      },
    };
    const r = router({
      env: dbEnv({ DB_PASSWORD: undefined, DB_IAM_AUTH: 'true', DB_READER_HOST: undefined, AWS_REGION: 'eu-west-1' }),
      loadModule: () => sdk,
      pool: { max: 1, maxUses: 1 },
    });
    for (let i = 0; i < 2; i++) {
      const row = (await r.query('SELECT current_user AS u, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl')).rows[0];
      expect(row).toEqual({ u: services.DB_USER, ssl: true });
    }
    expect(tokens).toBe(2);
    expect(signers).toEqual([{ hostname: '127.0.0.1', port: primaryPort, username: services.DB_USER, region: 'eu-west-1' }]);
  });

  test('the layer bundle finds pg under LAMBDA_TASK_ROOT', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pg-router-bundle-'));
    try {
      const outfile = path.join(dir, 'pg-router.js');
      await build({
        entryPoints: [path.join(ROOT, 'runtime', 'node', 'pg-router.ts')],
        bundle: true,
        platform: 'node',
        target: 'node20',
        format: 'cjs',
        external: ['pg'],
        outfile,
        logLevel: 'silent',
      });
      const script = `const { createPgRouter } = require(${JSON.stringify(outfile)});
        const r = createPgRouter();
        r.query(${JSON.stringify(SERVER)}).then(async (res) => { console.log(JSON.stringify(res.rows[0])); await r.end(); })
          .catch((e) => { console.error(e); process.exit(1); });`;
      const env: Record<string, string | undefined> = { ...process.env, ...dbEnv(), LAMBDA_TASK_ROOT: PG_DIR };
      delete env.NODE_PATH;
      const out = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ['-e', script], { env, cwd: dir }, (error, stdout, stderr) => error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout));
      });
      expect(JSON.parse(out)).toMatchObject({ port: replicaPort, standby: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  describe('read-your-writes across requests, replay paused on the replica', () => {
    const SECRET = 'ryw-test-secret-0123456789';
    let replay: PoolLike;
    const servers: HttpServer[] = [];

    /** A pool that records the statements it runs, as [pool name, text]. */
    const recording = (label: string, log: Array<[string, string]>, extra: Record<string, unknown> = {}): PoolLike => {
      const pool = new pg.Pool({ host: '127.0.0.1', port: label === 'writer' ? primaryPort : replicaPort, database: services.DB_NAME, user: services.DB_USER, password: services.DB_PASSWORD, ...extra });
      pool.on('error', () => undefined);
      return {
        query: (text: string | QueryConfig, values?: readonly unknown[]) => {
          log.push([label, typeof text === 'string' ? text : text.text]);
          return pool.query(text, values);
        },
        connect: () => pool.connect(),
        end: () => pool.end(),
        on: (event, listener) => pool.on(event, listener),
      };
    };

    /** A server on loopback for `app`; closed after the test. */
    async function site(app: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
      const listening = createServer(app);
      servers.push(listening);
      await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
    }

    /** create -> redirect -> read, as a plain `http` site would write it: POST /items?name=, GET /items?name=. */
    function plainHttpApp(r: PgRouter) {
      return (req: IncomingMessage, res: ServerResponse) => r.handle(req, res, async () => {
        const url = new URL(req.url ?? '/', 'http://x');
        const n = url.searchParams.get('name') ?? '';
        if (req.method === 'POST') {
          await r.query('INSERT INTO ww_node_items (name) VALUES ($1)', [n]);
          res.writeHead(303, { location: `/items?name=${n}` }).end();
          return;
        }
        const row = (await r.query('SELECT count(*)::int AS n, inet_server_port() AS port FROM ww_node_items WHERE name = $1', [n])).rows[0];
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(row));
      });
    }

    interface Visit { status: number; body: unknown; setCookie: string[] }
    /** One request with a cookie jar (no redirects followed: the test follows them). */
    async function visit(base: string, jar: Map<string, string>, method: string, target: string,
      headers: Record<string, string> = {}): Promise<Visit> {
      const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      const response = await fetch(base + target, { method, redirect: 'manual', headers: { ...headers, ...(cookie ? { cookie } : {}) } });
      const setCookie = response.headers.getSetCookie();
      for (const line of setCookie) {
        const [pair] = line.split(';');
        const [key, value] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
        if (/Max-Age=0(;|$)/.test(line)) jar.delete(key); else jar.set(key, value);
      }
      const text = await response.text();
      const json = (response.headers.get('content-type') ?? '').includes('json');
      return { status: response.status, body: json ? JSON.parse(text) : undefined, setCookie };
    }

    beforeAll(() => {
      replay = new pg.Pool({ host: services.WW_PG_REPLICA_DIR, port: replicaPort, user: services.WW_PG_SUPERUSER, database: 'postgres', max: 1 });
    });

    afterEach(async () => {
      await replay.query('SELECT pg_wal_replay_resume()');
      await Promise.all(servers.splice(0).map((listening) => new Promise((resolve) => listening.close(resolve))));
    });

    afterAll(async () => {
      await replay.end();
    });

    test.each(['on', 'off'])('synchronous_commit=%s: create -> redirect -> read finds the row; the cookie goes once the replica has it', async (commit) => {
      const log: Array<[string, string]> = [];
      const options = { options: `-c synchronous_commit=${commit}` };
      const r = createPgRouter({ writer: recording('writer', log, options), reader: recording('reader', log, options), readYourWrites: { secret: SECRET } });
      const base = await site(plainHttpApp(r));
      const jar = new Map<string, string>();
      const n = name();
      expect((await r.write('SHOW synchronous_commit')).rows[0].synchronous_commit).toBe(commit);
      await replay.query('SELECT pg_wal_replay_pause()');

      const created = await visit(base, jar, 'POST', `/items?name=${n}`, { 'x-forwarded-proto': 'https' });
      expect(created.status).toBe(303);
      expect(created.setCookie).toHaveLength(1);
      expect(created.setCookie[0]).toMatch(/^warm_web_ryw=L[0-9A-F]+\/[0-9A-F]+\.\d+\.[\w-]+; Max-Age=30; Path=\/; HttpOnly; SameSite=Lax; Secure$/);
      log.length = 0;
      const shown = await visit(base, jar, 'GET', `/items?name=${n}`);
      expect(shown.body).toEqual({ n: 1, port: primaryPort });
      expect(log.filter(([, sql]) => sql.includes('pg_last_wal_replay_lsn')).map(([pool]) => pool)).toEqual(['reader']);
      expect(shown.setCookie).toEqual([]); // not caught up: the cookie stays
      expect(jar.has('warm_web_ryw')).toBe(true);

      await replay.query('SELECT pg_wal_replay_resume()');
      await waitForReplica(r);
      log.length = 0;
      const later = await visit(base, jar, 'GET', `/items?name=${n}`);
      expect(later.body).toEqual({ n: 1, port: replicaPort });
      expect(later.setCookie).toEqual(['warm_web_ryw=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax']);
      expect(log.map(([pool]) => pool)).toEqual(['reader', 'reader']); // the check, then the read
      log.length = 0;
      expect((await visit(base, jar, 'GET', `/items?name=${n}`)).body).toEqual({ n: 1, port: replicaPort });
      expect(log).toHaveLength(1); // no cookie, no check
      await r.end();
    }, 30_000);

    test('without a secret (per-request read-your-writes only) the redirect misses the new row', async () => {
      const r = router();
      const base = await site(plainHttpApp(r));
      const jar = new Map<string, string>();
      const n = name();
      await replay.query('SELECT pg_wal_replay_pause()');
      const created = await visit(base, jar, 'POST', `/items?name=${n}`);
      expect(created.setCookie).toEqual([]);
      expect((await visit(base, jar, 'GET', `/items?name=${n}`)).body).toEqual({ n: 0, port: replicaPort });
    });

    test('Express: the same with app.use(router.middleware()), and a forged cookie is dropped', async () => {
      const r = router({ readYourWrites: { secret: SECRET } });
      const app = express();
      app.use(r.middleware());
      app.post('/items', async (req, res) => {
        await r.query('INSERT INTO ww_node_items (name) VALUES ($1)', [String(req.query.name)]);
        res.redirect(303, `/items?name=${String(req.query.name)}`);
      });
      app.get('/items', async (req, res) => {
        res.json((await r.query('SELECT count(*)::int AS n, inet_server_port() AS port FROM ww_node_items WHERE name = $1', [String(req.query.name)])).rows[0]);
      });
      const base = await site(app);
      const jar = new Map<string, string>();
      const n = name();
      await replay.query('SELECT pg_wal_replay_pause()');
      expect((await visit(base, jar, 'POST', `/items?name=${n}`)).status).toBe(303);
      expect((await visit(base, jar, 'GET', `/items?name=${n}`)).body).toEqual({ n: 1, port: primaryPort });

      const forged = new Map([['warm_web_ryw', `${jar.get('warm_web_ryw')!.slice(0, -2)}xx`]]);
      const answer = await visit(base, forged, 'GET', `/items?name=${n}`);
      expect(answer.body).toEqual({ n: 0, port: replicaPort });
      expect(answer.setCookie).toEqual(['warm_web_ryw=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax']);
    });

    test('a writer without WAL positions (as Aurora answers) gets a deadline cookie, and reads the writer until then', async () => {
      const setup = router();
      await setup.write('CREATE SCHEMA IF NOT EXISTS aurora_sim_node');
      await setup.write(`CREATE OR REPLACE FUNCTION aurora_sim_node.pg_current_wal_insert_lsn() RETURNS pg_lsn LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', MESSAGE = 'Function pg_current_wal_insert_lsn() is currently not supported for Aurora'; END $$`);
      await waitForReplica(setup);
      const log: Array<[string, string]> = [];
      const r = createPgRouter({
        writer: recording('writer', log, { options: '-c search_path=aurora_sim_node,pg_catalog,public' }),
        reader: recording('reader', log),
        readYourWrites: { secret: SECRET, maxAgeSeconds: 20 },
      });
      const base = await site(plainHttpApp(r));
      const jar = new Map<string, string>();
      const n = name();
      await replay.query('SELECT pg_wal_replay_pause()');
      const before = Date.now();
      await visit(base, jar, 'POST', `/items?name=${n}`);
      const [payload] = jar.get('warm_web_ryw')!.split('.');
      // No aurora_replica_status() to measure lag with here: the deadline is the Max-Age.
      expect(payload).toMatch(/^T\d+$/);
      expect(Number(payload.slice(1)) - before).toBeGreaterThanOrEqual(20_000);
      log.length = 0;
      expect((await visit(base, jar, 'GET', `/items?name=${n}`)).body).toEqual({ n: 1, port: primaryPort });
      expect(log.some(([, sql]) => sql.includes('pg_last_wal_replay_lsn'))).toBe(false);
      await r.end();
    });

    test('a reader without WAL positions: the check reads the writer, and later writes get a deadline', async () => {
      const setup = router();
      await setup.write('CREATE SCHEMA IF NOT EXISTS aurora_sim_node');
      await setup.write(`CREATE OR REPLACE FUNCTION aurora_sim_node.pg_last_wal_replay_lsn() RETURNS pg_lsn LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', MESSAGE = 'Function pg_last_wal_replay_lsn() is currently not supported for Aurora'; END $$`);
      await waitForReplica(setup);
      const r = createPgRouter({
        writer: recording('writer', []),
        reader: recording('reader', [], { options: '-c search_path=aurora_sim_node,pg_catalog,public' }),
        readYourWrites: { secret: SECRET },
      });
      const base = await site(plainHttpApp(r));
      const jar = new Map<string, string>();
      const [first, second] = [name(), name()];
      await visit(base, jar, 'POST', `/items?name=${first}`);
      expect(jar.get('warm_web_ryw')).toMatch(/^L/);
      expect((await visit(base, jar, 'GET', `/items?name=${first}`)).body).toEqual({ n: 1, port: primaryPort });
      await visit(base, jar, 'POST', `/items?name=${second}`);
      expect(jar.get('warm_web_ryw')).toMatch(/^T\d+\./);
      await r.end();
    });
  });
});
