/**
 * A read/write router for node-postgres (`pg`), shipped in the Node layer as `/opt/warm-web/pg-router.js`.
 * The app brings `pg` itself; the router finds it from the code root (LAMBDA_TASK_ROOT), or takes it as an
 * option. Same rules as the Django router (warm_web.django):
 *
 * - `query()` sends a read-only statement (SELECT / WITH / TABLE / VALUES / SHOW with no write in it) to the
 *   reader, anything else to the writer. A statement the reader refuses as a write (a SELECT of a function
 *   that writes) is run again on the writer.
 * - Read-your-writes per unit of work: inside `router.session(fn)` (or `app.use(router.middleware())`, one
 *   session per request), once a statement went to the writer, later reads of that session go there too.
 *   Outside a session nothing is remembered: each read goes to the reader.
 * - `transaction(fn)` runs fn in BEGIN/COMMIT on one writer connection; `router.query()` inside it uses that
 *   connection; the enclosing session counts as having written.
 * - Read-your-writes across requests, with a signing secret (`readYourWrites.secret`, or READ_YOUR_WRITES_SECRET):
 *   `router.middleware()` (Express/Connect) or `router.handle(req, res, next)` (plain `http`) gives the
 *   response to a request that wrote a cookie (`warm_web_ryw`: HMAC-SHA256-signed, HttpOnly, SameSite=Lax,
 *   Secure on HTTPS, Max-Age 30 s) holding the writer's WAL insert position after its last write (one
 *   `SELECT pg_current_wal_insert_lsn()` after each write). The client's next requests read the writer until
 *   the reader has replayed that position: their first read asks the reader once
 *   (`pg_last_wal_replay_lsn() >= position`); once it has, reads go to the reader and the cookie is dropped.
 *   Where the writer or the reader has no WAL position (Aurora answers "not supported"), the cookie holds a deadline: twice
 *   the highest reader lag `aurora_replica_status()` reports plus 1 s (sampled every 5 s), else the Max-Age.
 *   The Django router (warm_web.django) follows the same rule with its own cookie.
 * - Reader down: reads go to the writer, with one log line per outage, and the reader is tried again after
 *   a back-off (default 30 s).
 *
 * Environment (the warm-web env contract; explicit `writer` / `reader` pools skip it): DB_ENGINE
 * (postgresql), DB_WRITER_HOST, DB_READER_HOST (absent: reads go to the writer), DB_PORT (default 5432; a
 * host may be `host:port`), DB_NAME, DB_USER, and one of DB_SECRET_ARN (Secrets Manager JSON with
 * username/password, fetched once at first use with @aws-sdk/client-secrets-manager), DB_IAM_AUTH=true (a
 * token per new connection from @aws-sdk/rds-signer; bundle that package with the app) or DB_PASSWORD. With
 * the first two (AWS) connections use TLS without verifying the certificate, as libpq's sslmode=require.
 *
 * RDS Proxy: don't give queries a `name` (named queries are server-side prepared statements, which pin the
 * client connection), and avoid SET, advisory locks, LISTEN and temporary tables for the same reason.
 */
import { AsyncLocalStorage } from 'async_hooks';
import { createHmac, timingSafeEqual } from 'crypto';
import type { IncomingMessage, ServerResponse } from 'http';
import { createRequire } from 'module';
import * as path from 'path';

export type Row = Record<string, unknown>;

/** The parts of a `pg` result the router passes through. */
export interface QueryResult<R = Row> {
  readonly rows: R[];
  readonly rowCount: number | null;
  readonly command: string;
}

/** A `pg` query config object (`{ text, values }`). */
export interface QueryConfig {
  readonly text: string;
  readonly values?: readonly unknown[];
  readonly [key: string]: unknown;
}

export interface Queryable {
  query(text: string | QueryConfig, values?: readonly unknown[]): Promise<QueryResult>;
}

export interface PoolClientLike extends Queryable {
  release(destroy?: Error | boolean): void;
}

/** What the router needs of a `pg.Pool`. */
export interface PoolLike extends Queryable {
  connect(): Promise<PoolClientLike>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** `pg.Pool` settings (passed through as they are). */
export interface PoolConfig {
  readonly host?: string;
  readonly port?: number;
  readonly database?: string;
  readonly user?: string;
  readonly password?: string | (() => string | Promise<string>);
  readonly ssl?: boolean | { readonly rejectUnauthorized?: boolean };
  readonly [key: string]: unknown;
}

/** The `pg` module, or anything with a compatible `Pool`. */
export interface PgModule {
  readonly Pool: new (config: PoolConfig) => PoolLike;
}

export interface PgRouterOptions {
  /** The writer pool. @default a pg.Pool from the environment */
  readonly writer?: PoolLike;
  /** The reader pool; with an explicit `writer` and no `reader`, reads go to the writer. @default a pg.Pool from the environment when DB_READER_HOST is set */
  readonly reader?: PoolLike;
  /** The `pg` module. @default require('pg') resolved from LAMBDA_TASK_ROOT, then from this file */
  readonly pg?: PgModule;
  /** Where the env contract is read. @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Extra settings for the pools the router creates (max, idleTimeoutMillis, ...). */
  readonly pool?: PoolConfig;
  /** How long reads stay on the writer after the reader failed, in ms. @default 30000 */
  readonly backoffMs?: number;
  /** Where the outage line goes. @default console.warn */
  readonly log?: (message: string) => void;
  /** Loads a module by name (pg, the AWS SDK packages). @default resolution from LAMBDA_TASK_ROOT, then from this file */
  readonly loadModule?: (name: string) => unknown;
  /** Read-your-writes across requests (a signed cookie; see the module comment). @default on when READ_YOUR_WRITES_SECRET is set */
  readonly readYourWrites?: ReadYourWritesOptions;
}

export interface ReadYourWritesOptions {
  /** The key the cookie is signed with (at least 16 characters). @default process.env.READ_YOUR_WRITES_SECRET; without one, read-your-writes holds within a request only */
  readonly secret?: string;
  /** The cookie's name. @default 'warm_web_ryw' */
  readonly cookieName?: string;
  /** The cookie's Max-Age, the longest a client reads the writer after a write, in seconds. @default 30 */
  readonly maxAgeSeconds?: number;
}

export class PgRouterConfigError extends Error {
  constructor(message: string) {
    super(`warm-web pg-router: ${message}`);
    this.name = 'PgRouterConfigError';
  }
}

interface UnitOfWork {
  written: boolean;
  readonly client?: PoolClientLike;
  /** What the request's cookie says, when it carries a valid one (or `invalid`: drop it). */
  readonly follow?: Follow;
  /** The cookie value to set: the position (or deadline) after this request's last write. */
  mark?: string;
  /** Whether the response can carry the cookie (a request handled by `handle()` with a secret). */
  readonly tracked?: boolean;
}

interface Follow {
  readonly lsn?: string;
  readonly untilMs?: number;
  readonly invalid?: boolean;
  caughtUp?: Promise<boolean>;
  settled?: boolean;
}

interface Ryw {
  readonly secret: string;
  readonly cookieName: string;
  readonly maxAgeSeconds: number;
}

interface Pools {
  readonly writer: PoolLike;
  readonly reader: PoolLike | undefined;
}

const DEFAULT_BACKOFF_MS = 30_000;
const LSN = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/;
// Not supported (Aurora), no such function: the writer has no WAL position to compare.
const NO_POSITION = new Set(['0A000', '42883']);
const LAG_SAMPLE_MS = 5000;

// --------------------------------------------------------------------------------------------------
// Statement classification
// --------------------------------------------------------------------------------------------------

const LEADING = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/|\()*/;
const READ_KEYWORD = /^(?:select|with|table|values|show)\b/i;
// Anything that may write, lock or change session state, wherever it appears (string literals included:
// a false alarm only sends a read to the writer).
const WRITES = /\b(?:insert|update|delete|merge|into|copy|for\s+(?:no\s+key\s+)?update|for\s+(?:key\s+)?share|nextval|setval|set_config|txid_current|pg_notify|lo_\w+|pg_(?:try_)?advisory\w*)\b/i;
const CLASSIFIED = new Map<string, boolean>();
const CLASSIFIED_MAX = 1000;

/** True when the statement only reads, so a hot-standby reader can run it. */
export function isReadOnlyStatement(sql: string): boolean {
  const known = CLASSIFIED.get(sql);
  if (known !== undefined) {
    return known;
  }
  const body = sql.replace(LEADING, '');
  const readOnly = READ_KEYWORD.test(body) && !WRITES.test(body);
  if (CLASSIFIED.size >= CLASSIFIED_MAX) {
    CLASSIFIED.clear();
  }
  CLASSIFIED.set(sql, readOnly);
  return readOnly;
}

// --------------------------------------------------------------------------------------------------
// Errors that mean "the reader is not there"
// --------------------------------------------------------------------------------------------------

const CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE',
  // admin_shutdown, crash_shutdown, cannot_connect_now, and the connection_exception class
  '57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006',
]);
const CONNECTION_MESSAGES = /connection terminated|timeout exceeded when trying to connect|connection timeout|server closed the connection|client has encountered a connection error/i;

function errorCode(error: unknown): string | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isConnectionError(error: unknown): boolean {
  const code = errorCode(error);
  if (code !== undefined && CONNECTION_CODES.has(code)) {
    return true;
  }
  if (error instanceof AggregateError) {
    return error.errors.some(isConnectionError);
  }
  return CONNECTION_MESSAGES.test(messageOf(error));
}

function describe(error: unknown): string {
  const code = errorCode(error);
  const message = messageOf(error).replace(/\s+/g, ' ').trim() || (error instanceof AggregateError ? 'several connection errors' : 'error');
  const text = code && !message.includes(code) ? `${code}: ${message}` : message;
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

// --------------------------------------------------------------------------------------------------
// Environment
// --------------------------------------------------------------------------------------------------

type Env = Readonly<Record<string, string | undefined>>;

function envValue(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

function required(env: Env, name: string, what: string): string {
  const value = envValue(env, name);
  if (value === undefined) {
    throw new PgRouterConfigError(`${name} is not set (${what})`);
  }
  return value;
}

function parsePort(value: string, name: string): number {
  const port = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(port > 0 && port < 65536)) {
    throw new PgRouterConfigError(`${name} must be a TCP port number, got ${JSON.stringify(value)}`);
  }
  return port;
}

/** `host`, `host:port` or `[v6]:port`. */
function parseEndpoint(value: string, name: string, defaultPort: number): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(value);
  if (bracketed) {
    return { host: bracketed[1], port: bracketed[2] === undefined ? defaultPort : parsePort(bracketed[2], name) };
  }
  const parts = value.split(':');
  if (parts.length === 2) {
    return { host: parts[0], port: parsePort(parts[1], name) };
  }
  return { host: value, port: defaultPort };
}

interface SecretValue {
  readonly username?: string;
  readonly password: string;
}

interface SecretsManagerModule {
  readonly SecretsManagerClient: new (config: object) => { send(command: unknown): Promise<{ SecretString?: string }> };
  readonly GetSecretValueCommand: new (input: { SecretId: string }) => unknown;
}

interface RdsSignerModule {
  readonly Signer: new (config: { hostname: string; port: number; username: string; region?: string }) => { getAuthToken(): Promise<string> };
}

function secretFetcher(arn: string, loadModule: (name: string) => unknown): () => Promise<SecretValue> {
  let pending: Promise<SecretValue> | undefined;
  const fetch = async (): Promise<SecretValue> => {
    const sdk = loadModule('@aws-sdk/client-secrets-manager') as SecretsManagerModule;
    let parsed: unknown;
    try {
      const answer = await new sdk.SecretsManagerClient({}).send(new sdk.GetSecretValueCommand({ SecretId: arn }));
      parsed = JSON.parse(answer.SecretString ?? '');
    } catch (error) {
      throw new PgRouterConfigError(`could not read the secret DB_SECRET_ARN=${arn}: ${messageOf(error)}`);
    }
    const secret = parsed as Partial<SecretValue> | null;
    if (typeof secret !== 'object' || secret === null || typeof secret.password !== 'string') {
      throw new PgRouterConfigError(`the secret DB_SECRET_ARN=${arn} is not JSON with a "password" string`);
    }
    return secret as SecretValue;
  };
  return () => {
    // Fetched once; a failed fetch is tried again at the next connection.
    pending ??= fetch().catch((error: unknown) => {
      pending = undefined;
      throw error;
    });
    return pending;
  };
}

/** What a pool needs from the env contract; `user` may only be known once the secret is read. */
interface EnvPools {
  readonly writer: PoolConfig;
  readonly reader: PoolConfig | undefined;
  /** Resolves the user when it comes from the secret (DB_USER unset). */
  readonly userFromSecret?: () => Promise<string>;
}

/** The writer and reader pool settings from the warm-web env contract. */
export function poolConfigsFromEnv(env: Env, loadModule: (name: string) => unknown = defaultLoadModule): EnvPools {
  const engine = (envValue(env, 'DB_ENGINE') ?? 'postgresql').toLowerCase();
  if (engine !== 'postgresql') {
    throw new PgRouterConfigError(`DB_ENGINE must be postgresql for the pg router, got ${JSON.stringify(env.DB_ENGINE)}`);
  }
  const portValue = envValue(env, 'DB_PORT');
  const defaultPort = portValue === undefined ? 5432 : parsePort(portValue, 'DB_PORT');
  const writer = parseEndpoint(required(env, 'DB_WRITER_HOST', 'the writer endpoint, e.g. the RDS Proxy endpoint'), 'DB_WRITER_HOST', defaultPort);
  const readerValue = envValue(env, 'DB_READER_HOST');
  const reader = readerValue === undefined ? undefined : parseEndpoint(readerValue, 'DB_READER_HOST', defaultPort);
  const database = required(env, 'DB_NAME', 'the database name');

  const secretArn = envValue(env, 'DB_SECRET_ARN');
  const iamRaw = (env.DB_IAM_AUTH ?? '').trim().toLowerCase();
  if (!['', 'true', 'false', '1', '0', 'yes', 'no', 'on', 'off'].includes(iamRaw)) {
    throw new PgRouterConfigError(`DB_IAM_AUTH must be true or false, got ${JSON.stringify(env.DB_IAM_AUTH)}`);
  }
  const chosen = [
    ['DB_SECRET_ARN', secretArn !== undefined],
    ['DB_IAM_AUTH', ['true', '1', 'yes', 'on'].includes(iamRaw)],
    ['DB_PASSWORD', env.DB_PASSWORD !== undefined],
  ].filter(([, present]) => present).map(([name]) => name as string);
  if (chosen.length !== 1) {
    throw new PgRouterConfigError('set exactly one of DB_SECRET_ARN (Secrets Manager), DB_IAM_AUTH=true (IAM authentication) '
      + `or DB_PASSWORD (plain); found ${chosen.length ? chosen.join(', ') : 'none of them'}`);
  }
  const user = envValue(env, 'DB_USER');
  const base = { database, connectionTimeoutMillis: 5000 };
  // With AWS credentials (RDS Proxy requires TLS): encrypted, as libpq's sslmode=require, which does not verify
  // the certificate; pass `pool: { ssl: { ca } }` to verify it.
  const tls = { ssl: { rejectUnauthorized: false } };

  if (chosen[0] === 'DB_SECRET_ARN') {
    const secret = secretFetcher(secretArn!, loadModule);
    const password = async () => (await secret()).password;
    const userFromSecret = user === undefined ? async () => {
      const name = (await secret()).username;
      if (typeof name !== 'string' || !name) {
        throw new PgRouterConfigError(`DB_USER is not set and the secret DB_SECRET_ARN=${secretArn} has no "username"`);
      }
      return name;
    } : undefined;
    const config = (endpoint: { host: string; port: number }): PoolConfig => ({ ...base, ...tls, ...endpoint, user, password });
    return { writer: config(writer), reader: reader && config(reader), userFromSecret };
  }
  if (user === undefined) {
    throw new PgRouterConfigError(`DB_USER is not set (the database user; required with ${chosen[0]})`);
  }
  if (chosen[0] === 'DB_IAM_AUTH') {
    const config = (endpoint: { host: string; port: number }): PoolConfig => {
      let signer: { getAuthToken(): Promise<string> } | undefined;
      const password = () => {
        if (signer === undefined) {
          const sdk = loadModule('@aws-sdk/rds-signer') as RdsSignerModule;
          signer = new sdk.Signer({ hostname: endpoint.host, port: endpoint.port, username: user, region: env.AWS_REGION });
        }
        return signer.getAuthToken();
      };
      return { ...base, ...tls, ...endpoint, user, password };
    };
    return { writer: config(writer), reader: reader && config(reader) };
  }
  const config = (endpoint: { host: string; port: number }): PoolConfig => ({ ...base, ...endpoint, user, password: env.DB_PASSWORD });
  return { writer: config(writer), reader: reader && config(reader) };
}

function defaultLoadModule(name: string): unknown {
  const roots = [process.env.LAMBDA_TASK_ROOT, process.cwd()].filter((root): root is string => !!root);
  const errors: string[] = [];
  for (const from of [...roots.map((root) => path.join(root, 'noop.js')), __filename]) {
    try {
      return createRequire(from)(name);
    } catch (error) {
      errors.push(messageOf(error).split('\n')[0]);
    }
  }
  throw new PgRouterConfigError(`cannot load ${name} (install it with your app): ${errors.join('; ')}`);
}

// --------------------------------------------------------------------------------------------------
// Read-your-writes cookie
// --------------------------------------------------------------------------------------------------

function rywFrom(options: ReadYourWritesOptions | undefined, env: Env): Ryw | undefined {
  const secret = options?.secret ?? envValue(env, 'READ_YOUR_WRITES_SECRET');
  if (secret === undefined) {
    return undefined;
  }
  if (secret.length < 16) {
    throw new PgRouterConfigError(`the read-your-writes secret (readYourWrites.secret or READ_YOUR_WRITES_SECRET) must be at least 16 characters, got ${secret.length}`);
  }
  const cookieName = options?.cookieName ?? 'warm_web_ryw';
  if (!/^[A-Za-z0-9_-]+$/.test(cookieName)) {
    throw new PgRouterConfigError(`readYourWrites.cookieName must be a cookie name, got ${JSON.stringify(cookieName)}`);
  }
  const maxAgeSeconds = options?.maxAgeSeconds ?? 30;
  if (!(Number.isInteger(maxAgeSeconds) && maxAgeSeconds >= 1 && maxAgeSeconds <= 3600)) {
    throw new PgRouterConfigError(`readYourWrites.maxAgeSeconds must be a whole number of seconds from 1 to 3600, got ${maxAgeSeconds}`);
  }
  return { secret, cookieName, maxAgeSeconds };
}

function signature(secret: string, text: string): string {
  return createHmac('sha256', secret).update(text).digest('base64url');
}

/** `<payload>.<issued, epoch seconds>.<HMAC>`; payload `L<lsn>` (a WAL position) or `T<epoch ms>` (a deadline). */
function signCookie(ryw: Ryw, payload: string, nowMs: number): string {
  const text = `${payload}.${Math.floor(nowMs / 1000)}`;
  return `${text}.${signature(ryw.secret, text)}`;
}

function readCookie(ryw: Ryw, header: string | undefined, nowMs: number): Follow | undefined {
  const prefix = `${ryw.cookieName}=`;
  const raw = header?.split(';').map((part) => part.trim()).find((part) => part.startsWith(prefix))?.slice(prefix.length);
  if (raw === undefined || raw === '') {
    return undefined;
  }
  const cut = raw.lastIndexOf('.');
  const text = raw.slice(0, cut);
  const given = Buffer.from(raw.slice(cut + 1));
  const expected = Buffer.from(signature(ryw.secret, text));
  const [payload, issued] = [text.slice(0, text.lastIndexOf('.')), Number(text.slice(text.lastIndexOf('.') + 1))];
  if (cut < 0 || given.length !== expected.length || !timingSafeEqual(given, expected)
    || !(nowMs / 1000 - issued <= ryw.maxAgeSeconds)) {
    return { invalid: true };
  }
  if (payload.startsWith('L') && LSN.test(payload.slice(1))) {
    return { lsn: payload.slice(1) };
  }
  if (payload.startsWith('T') && /^\d+$/.test(payload.slice(1))) {
    return { untilMs: Number(payload.slice(1)) };
  }
  return { invalid: true };
}

function isSecure(req: IncomingMessage): boolean {
  const forwarded = req.headers['x-forwarded-proto'];
  return (req.socket as { encrypted?: boolean } | undefined)?.encrypted === true
    || (typeof forwarded === 'string' && forwarded.split(',')[0].trim() === 'https');
}

function appendSetCookie(res: ServerResponse, cookie: string): void {
  const existing = res.getHeader('set-cookie');
  const list = existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
  res.setHeader('set-cookie', [...list, cookie]);
}

// --------------------------------------------------------------------------------------------------
// The router
// --------------------------------------------------------------------------------------------------

export class PgRouter {
  private readonly units = new AsyncLocalStorage<UnitOfWork>();
  private readonly backoffMs: number;
  private readonly log: (message: string) => void;
  private pools: Pools | undefined;
  private pending: Promise<Pools> | undefined;
  private init: (() => Promise<Pools>) | undefined;
  private readonly ownsPools: boolean;
  private readerDown = false;
  private retryReaderAt = 0;
  private outages = 0;
  private readonly ryw: Ryw | undefined;
  private walPositions = true;
  private lagWindow: { readonly ms: number; readonly at: number } | undefined;

  constructor(options: PgRouterOptions = {}) {
    this.backoffMs = options.backoffMs ?? DEFAULT_BACKOFF_MS;
    this.log = options.log ?? ((message) => console.warn(message));
    this.ryw = rywFrom(options.readYourWrites, options.env ?? process.env);
    this.ownsPools = options.writer === undefined;
    if (options.writer !== undefined) {
      this.pools = { writer: options.writer, reader: options.reader };
    } else {
      const loadModule = options.loadModule ?? defaultLoadModule;
      const configs = poolConfigsFromEnv(options.env ?? process.env, loadModule);
      const pg = options.pg ?? (loadModule('pg') as PgModule);
      const create = (config: PoolConfig | undefined, user: string | undefined): PoolLike | undefined => {
        if (config === undefined) {
          return undefined;
        }
        const pool = new pg.Pool({ ...config, ...(user === undefined ? {} : { user }), ...options.pool });
        // An idle connection that drops (the server restarts, the proxy times it out) must not crash the
        // process; the next query on the pool finds out for itself.
        pool.on('error', () => undefined);
        return pool;
      };
      if (configs.userFromSecret === undefined) {
        this.pools = { writer: create(configs.writer, undefined)!, reader: create(configs.reader, undefined) };
      } else {
        // The user is in the secret: the pools are made at first use, once it has been read.
        const userFromSecret = configs.userFromSecret;
        this.init = async () => {
          const user = await userFromSecret();
          this.pools ??= { writer: create(configs.writer, user)!, reader: create(configs.reader, user) };
          return this.pools;
        };
      }
    }
  }

  /** Runs a statement: read-only ones on the reader (see the module comment), others on the writer. */
  public async query<R = Row>(text: string | QueryConfig, values?: readonly unknown[]): Promise<QueryResult<R>> {
    const unit = this.units.getStore();
    if (unit?.client !== undefined) {
      return unit.client.query(text, values) as Promise<QueryResult<R>>;
    }
    const pools = this.pools ?? await this.ready();
    const readOnly = isReadOnlyStatement(typeof text === 'string' ? text : text.text);
    if (!readOnly || pools.reader === undefined || unit?.written) {
      if (!readOnly && unit !== undefined) {
        return this.written(unit, pools, pools.writer.query(text, values)) as Promise<QueryResult<R>>;
      }
      return pools.writer.query(text, values) as Promise<QueryResult<R>>;
    }
    if (this.readerDown && Date.now() < this.retryReaderAt) {
      return pools.writer.query(text, values) as Promise<QueryResult<R>>;
    }
    if (unit?.follow !== undefined && !await this.readerHas(unit.follow, pools.reader)) {
      return pools.writer.query(text, values) as Promise<QueryResult<R>>;
    }
    let result: QueryResult;
    try {
      result = await pools.reader.query(text, values);
    } catch (error) {
      if (errorCode(error) === '25006') {
        // read_only_sql_transaction: it wrote after all (a function with side effects). The writer runs it.
        if (unit !== undefined) {
          return this.written(unit, pools, pools.writer.query(text, values)) as Promise<QueryResult<R>>;
        }
      } else if (isConnectionError(error)) {
        this.markReaderDown(error);
      } else {
        throw error;
      }
      return pools.writer.query(text, values) as Promise<QueryResult<R>>;
    }
    if (this.readerDown) {
      this.readerDown = false;
    }
    return result as QueryResult<R>;
  }

  /** Runs a statement on the writer whatever it is, and counts it as a write of the current session. */
  public async write<R = Row>(text: string | QueryConfig, values?: readonly unknown[]): Promise<QueryResult<R>> {
    const unit = this.units.getStore();
    if (unit?.client !== undefined) {
      return unit.client.query(text, values) as Promise<QueryResult<R>>;
    }
    const pools = this.pools ?? await this.ready();
    if (unit !== undefined) {
      return this.written(unit, pools, pools.writer.query(text, values)) as Promise<QueryResult<R>>;
    }
    return pools.writer.query(text, values) as Promise<QueryResult<R>>;
  }

  /**
   * Runs fn inside BEGIN ... COMMIT on one writer connection (ROLLBACK if fn throws). `router.query()` calls
   * made inside fn use that connection; a nested `transaction()` joins the outer one.
   */
  public async transaction<T>(fn: (client: Queryable) => Promise<T>): Promise<T> {
    const outer = this.units.getStore();
    if (outer?.client !== undefined) {
      return fn(outer.client);
    }
    const pools = this.pools ?? await this.ready();
    const client = await pools.writer.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await this.units.run({ written: true, client }, () => fn(client));
      await client.query('COMMIT');
      return result;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackError) {
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
      }
      throw error;
    } finally {
      client.release(broken);
      if (outer !== undefined) {
        await this.written(outer, pools, Promise.resolve());
      }
    }
  }

  /** Runs fn as one unit of work: after a write in it, its reads go to the writer. */
  public session<T>(fn: () => T): T {
    return this.units.run({ written: false }, fn);
  }

  /** Connect/Express middleware: one session per request, and read-your-writes across requests with a secret. */
  public middleware(): (req: unknown, res: unknown, next: (error?: unknown) => void) => void {
    return (req, res, next) => this.handle(req as IncomingMessage, res as ServerResponse, next);
  }

  /**
   * Runs `next` as the request's session (plain `http`: `router.handle(req, res, () => app(req, res))`). With a
   * secret, reads the read-your-writes cookie from `req` and sets or drops it on `res` as its headers go out.
   */
  public handle<T>(req: IncomingMessage, res: ServerResponse, next: () => T): T {
    const ryw = this.ryw;
    if (ryw === undefined || typeof res?.writeHead !== 'function' || req?.headers === undefined) {
      return this.units.run({ written: false }, next);
    }
    const unit: UnitOfWork = { written: false, tracked: true, follow: readCookie(ryw, req.headers.cookie, Date.now()) };
    const writeHead = res.writeHead;
    const router = this;
    res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
      router.applyCookie(ryw, unit, req, res);
      return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
    } as ServerResponse['writeHead'];
    return this.units.run(unit, next);
  }

  /** Whether the current session has written (false outside a session). */
  public hasWritten(): boolean {
    return this.units.getStore()?.written ?? false;
  }

  /** The reader's state, for health endpoints and tests. */
  public readerStatus(): { down: boolean; outages: number; retryInMs: number } {
    return {
      down: this.readerDown,
      outages: this.outages,
      retryInMs: this.readerDown ? Math.max(0, this.retryReaderAt - Date.now()) : 0,
    };
  }

  /** The pools, once they exist (made at first use when the user comes from the secret). */
  public async ready(): Promise<Pools> {
    if (this.pools !== undefined) {
      return this.pools;
    }
    // A failed secret read is tried again by the next caller.
    this.pending ??= this.init!().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  /** Ends the pools the router created (pools passed in are the caller's to end). */
  public async end(): Promise<void> {
    if (!this.ownsPools) {
      return;
    }
    const pools = this.pools;
    if (pools !== undefined) {
      await Promise.all([pools.writer.end(), pools.reader?.end()]);
    }
  }

  /** After a write of `unit` (once `query` settled): remember the writer's position for the cookie. */
  private async written(unit: UnitOfWork, pools: Pools, query: Promise<unknown>): Promise<unknown> {
    unit.written = true;
    const result = await query;
    if (unit.tracked && this.ryw !== undefined) {
      unit.mark = await this.writerMark(this.ryw, pools.writer);
    }
    return result;
  }

  private async writerMark(ryw: Ryw, writer: PoolLike): Promise<string> {
    const deadline = (ms: number) => `T${Date.now() + ms}`;
    if (this.walPositions) {
      try {
        return `L${String((await writer.query('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0].lsn)}`;
      } catch (error) {
        if (!NO_POSITION.has(errorCode(error) ?? '')) {
          return deadline(ryw.maxAgeSeconds * 1000);
        }
        this.walPositions = false;
      }
    }
    const now = Date.now();
    if (this.lagWindow === undefined || now - this.lagWindow.at >= LAG_SAMPLE_MS) {
      let ms = ryw.maxAgeSeconds * 1000;
      try {
        const lag = (await writer.query("SELECT max(replica_lag_in_msec) AS lag FROM aurora_replica_status() WHERE session_id <> 'MASTER_SESSION_ID'")).rows[0].lag;
        if (lag !== null && lag !== undefined) {
          ms = 2 * Number(lag) + 1000;
        }
      } catch {
        // no lag to read: the cap
      }
      this.lagWindow = { ms, at: now };
    }
    return deadline(Math.min(ryw.maxAgeSeconds * 1000, this.lagWindow.ms));
  }

  /** Has the reader replayed what the cookie's client wrote? Asked once per request; any doubt means no. */
  private readerHas(follow: Follow, reader: PoolLike): Promise<boolean> {
    if (follow.invalid) {
      return Promise.resolve(true);
    }
    follow.caughtUp ??= (async () => {
      let ok = false;
      if (follow.lsn !== undefined) {
        try {
          ok = (await reader.query('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [follow.lsn])).rows[0].ok === true;
        } catch (error) {
          // A reader without WAL positions (Aurora): later writes get a deadline instead.
          if (NO_POSITION.has(errorCode(error) ?? '')) {
            this.walPositions = false;
          }
          ok = false;
        }
      } else {
        ok = Date.now() >= follow.untilMs!;
      }
      follow.settled = ok;
      return ok;
    })();
    return follow.caughtUp;
  }

  private applyCookie(ryw: Ryw, unit: UnitOfWork, req: IncomingMessage, res: ServerResponse): void {
    if (res.headersSent) {
      return;
    }
    const attributes = `; Path=/; HttpOnly; SameSite=Lax${isSecure(req) ? '; Secure' : ''}`;
    let mark = unit.mark;
    if (mark !== undefined) {
      const earlier = unit.follow?.untilMs;
      if (mark.startsWith('T') && earlier !== undefined) {
        mark = `T${Math.max(Number(mark.slice(1)), earlier)}`;
      }
      appendSetCookie(res, `${ryw.cookieName}=${signCookie(ryw, mark, Date.now())}; Max-Age=${ryw.maxAgeSeconds}${attributes}`);
    } else if (unit.follow !== undefined && (unit.follow.invalid || unit.follow.settled === true)) {
      appendSetCookie(res, `${ryw.cookieName}=; Max-Age=0${attributes}`);
    }
  }

  private markReaderDown(error: unknown): void {
    this.retryReaderAt = Date.now() + this.backoffMs;
    if (this.readerDown) {
      return;
    }
    this.readerDown = true;
    this.outages += 1;
    this.log(`warm-web pg-router: reader unreachable (${describe(error)}); reads go to the writer, retrying every ${this.backoffMs / 1000}s`);
  }
}

/** A router over the env contract's pools, or over the pools given. */
export function createPgRouter(options: PgRouterOptions = {}): PgRouter {
  return new PgRouter(options);
}
