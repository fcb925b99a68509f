import { ChildProcess, spawn } from 'child_process';
import * as http from 'http';
import { AddressInfo } from 'net';
import * as path from 'path';
import * as readline from 'readline';

/**
 * A function served by `LocalLambda`: real processes running the cdk-warm-web shim and a real app.
 */
export interface LocalFunction {
  /** Function name; invoke it by name, by ARN, or with a qualifier. */
  readonly name: string;
  readonly runtime: 'python' | 'node';
  /** The app's code directory (LAMBDA_TASK_ROOT). */
  readonly codeDir: string;
  /** Environment of every environment process (WARM_WEB_APP, WARM_WEB_APP_KIND, the app's own). */
  readonly environment: Record<string, string>;
  /** Python interpreter for Python functions. @default python3 */
  readonly python?: string;
  /** Invoke timeout. @default 30 s */
  readonly timeoutMs?: number;
  /** Idle environments are reclaimed after this long. @default 5 minutes */
  readonly idleMs?: number;
  /** Most environments at once; requests beyond are throttled (429). @default 1000 */
  readonly maxEnvironments?: number;
}

const ROOT = path.resolve(__dirname, '..');
const PYTHON_SHIM = path.join(ROOT, 'runtime', 'python');
const NODE_SHIM = path.join(ROOT, 'assets', 'node-shim-layer', 'warm-web', 'index.js');

// The environment process: INIT is importing the shim (which imports the app); then one invoke at a
// time from stdin. Answers go to fd 3, so the shim's stdout (EMF lines, app logs) stays stdout.
const PYTHON_BOOTSTRAP = `
import json, os, sys, time
out = os.fdopen(3, "w", buffering=1)
started = time.perf_counter()
try:
    import warm_web.handler as shim
except BaseException as e:
    out.write(json.dumps({"initError": "%s: %s" % (type(e).__name__, e)}) + "\\n")
    sys.exit(1)
out.write(json.dumps({"ready": True, "initMs": (time.perf_counter() - started) * 1000}) + "\\n")

class Context:
    def __init__(self, msg):
        self.aws_request_id = msg["requestId"]
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.invoked_function_arn = msg["arn"]
        self.memory_limit_in_mb = "1024"
        self._deadline = msg["deadlineMs"]
    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline - time.time() * 1000))

for line in sys.stdin:
    msg = json.loads(line)
    begin = time.perf_counter()
    started_at_ms = time.time() * 1000
    try:
        reply = {"id": msg["id"], "result": shim.handler(msg["event"], Context(msg))}
    except Exception as e:
        reply = {"id": msg["id"], "error": {"errorType": type(e).__name__, "errorMessage": str(e)}}
    reply["durationMs"] = (time.perf_counter() - begin) * 1000
    reply["startedAtMs"] = started_at_ms
    out.write(json.dumps(reply) + "\\n")
`;

const NODE_BOOTSTRAP = `
const fs = require('fs');
const readline = require('readline');
const reply = (o) => fs.writeSync(3, JSON.stringify(o) + '\\n');
const started = performance.now();
let shim;
try { shim = require(process.env.WARM_WEB_LOCAL_SHIM); } catch (e) { reply({ initError: e.name + ': ' + e.message }); process.exit(1); }
const ready = shim.ready ? Promise.resolve(shim.ready) : Promise.resolve();
ready.then(() => {
  reply({ ready: true, initMs: performance.now() - started });
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', async (line) => {
    const msg = JSON.parse(line);
    const context = {
      awsRequestId: msg.requestId, functionName: process.env.AWS_LAMBDA_FUNCTION_NAME, invokedFunctionArn: msg.arn,
      memoryLimitInMB: '1024', getRemainingTimeInMillis: () => Math.max(0, msg.deadlineMs - Date.now()),
    };
    const begin = performance.now();
    const startedAtMs = Date.now();
    let answer;
    try { answer = { id: msg.id, result: await shim.handler(msg.event, context) }; }
    catch (e) { answer = { id: msg.id, error: { errorType: e.name, errorMessage: e.message } }; }
    reply({ ...answer, durationMs: performance.now() - begin, startedAtMs });
  });
}, (e) => { reply({ initError: e.name + ': ' + e.message }); process.exit(1); });
`;

interface Pending {
  readonly resolve: (reply: EnvironmentReply) => void;
}

interface EnvironmentReply {
  readonly result?: unknown;
  /** How long the handler ran, measured inside the environment (what Lambda bills). */
  readonly durationMs?: number;
  /** When the handler started, by the environment's clock (epoch ms). */
  readonly startedAtMs?: number;
  readonly error?: { errorType: string; errorMessage: string };
}

/** One execution environment: a process that serves one invoke at a time. */
class Environment {
  private static counter = 0;
  /** Unique across the server, for invocation records. */
  public readonly id = ++Environment.counter;
  public readonly ready: Promise<void>;
  public busy = false;
  private readonly proc: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private idleTimer?: NodeJS.Timeout;
  private exited = false;

  constructor(fn: LocalFunction, endpoint: string, private readonly onExit: (env: Environment) => void, log: (line: string) => void) {
    // Code that calls Lambda from inside (a self-invoking warmer) reaches this server too.
    const env = {
      ...process.env, AWS_ENDPOINT_URL_LAMBDA: endpoint, ...fn.environment, AWS_LAMBDA_FUNCTION_NAME: fn.name, LAMBDA_TASK_ROOT: fn.codeDir,
    };
    const stdio: Array<'pipe'> = ['pipe', 'pipe', 'pipe', 'pipe'];
    this.proc = fn.runtime === 'python'
      ? spawn(fn.python ?? 'python3', ['-c', PYTHON_BOOTSTRAP], {
        stdio, cwd: fn.codeDir, env: { ...env, PYTHONPATH: [PYTHON_SHIM, fn.codeDir].join(path.delimiter), PYTHONDONTWRITEBYTECODE: '1' },
      })
      : spawn(process.execPath, ['-e', NODE_BOOTSTRAP], { stdio, cwd: fn.codeDir, env: { ...env, WARM_WEB_LOCAL_SHIM: NODE_SHIM } });
    for (const stream of [this.proc.stdout!, this.proc.stderr!]) {
      readline.createInterface({ input: stream }).on('line', log);
    }
    const answers = readline.createInterface({ input: this.proc.stdio[3] as NodeJS.ReadableStream });
    this.ready = new Promise((resolve, reject) => {
      answers.on('line', (line) => {
        const msg = JSON.parse(line);
        if (msg.initError) {reject(new Error(msg.initError));} else if (msg.ready) {resolve();} else {
          this.pending.get(msg.id)?.resolve(msg);
          this.pending.delete(msg.id);
        }
      });
      this.proc.on('exit', (code) => {
        this.exited = true;
        reject(new Error(`environment exited during INIT (code ${code})`));
        for (const p of this.pending.values()) p.resolve({ error: { errorType: 'Runtime.ExitError', errorMessage: `environment exited (code ${code})` } });
        this.pending.clear();
        this.onExit(this);
      });
    });
    this.ready.catch(() => undefined);
  }

  public invoke(event: unknown, arn: string, requestId: string, timeoutMs: number): Promise<EnvironmentReply> {
    clearTimeout(this.idleTimer);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({ error: { errorType: 'Sandbox.Timedout', errorMessage: `Task timed out after ${timeoutMs} ms` } });
        this.stop(); // Lambda discards an environment whose invoke timed out.
      }, timeoutMs);
      this.pending.set(id, { resolve: (r) => { clearTimeout(timer); resolve(r); } });
      this.proc.stdin!.write(JSON.stringify({ id, event, arn, requestId, deadlineMs: Date.now() + timeoutMs }) + '\n');
    });
  }

  public idle(idleMs: number) {
    this.idleTimer = setTimeout(() => this.stop(), idleMs);
    this.idleTimer.unref();
  }

  public stop() {
    clearTimeout(this.idleTimer);
    if (!this.exited) this.proc.kill('SIGKILL');
  }

  public get alive() {
    return !this.exited;
  }
}

/** One invoke as the pool served it. */
export interface InvocationRecord {
  /** Which environment served it. */
  readonly environment: number;
  /** When the request reached the pool (epoch ms). */
  readonly arrivedMs: number;
  /** When the pool handed it to the environment: after INIT for a cold start. */
  readonly startedMs: number;
  /** When the handler began inside the environment (after the hand-over reached the process). */
  readonly handlerStartedMs: number;
  readonly endedMs: number;
  /** How long the handler ran, measured inside the environment: Lambda's billed duration. */
  readonly durationMs: number;
  readonly cold: boolean;
  /** The round of a warm ping (`warmWeb.round`); undefined for any other event. */
  readonly warmRound?: string;
}

/** What happened on a function, for tests and benchmarks. */
export interface LocalFunctionStats {
  readonly environmentsStarted: number;
  readonly environmentsAlive: number;
  readonly invocations: number;
  readonly throttles: number;
  readonly peakConcurrency: number;
}

/** Epoch milliseconds with a fraction: at N = 10 a warm round's whole dispatch spread is a few ms. */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

class FunctionPool {
  private readonly idle: Environment[] = [];
  private readonly all = new Set<Environment>();
  private busyCount = 0;
  public stats = { environmentsStarted: 0, invocations: 0, throttles: 0, peakConcurrency: 0 };
  public readonly records: InvocationRecord[] = [];

  constructor(public readonly fn: LocalFunction, private readonly endpoint: () => string, private readonly log: (line: string) => void) {}

  public async invoke(event: unknown, arn: string, requestId: string): Promise<EnvironmentReply | 'throttled'> {
    const arrivedMs = nowMs();
    let cold = false;
    let env = this.idle.pop();
    while (env && !env.alive) env = this.idle.pop();
    if (!env) {
      if (this.all.size >= (this.fn.maxEnvironments ?? 1000)) {
        this.stats.throttles += 1;
        return 'throttled';
      }
      env = new Environment(this.fn, this.endpoint(), (e) => this.all.delete(e), this.log);
      cold = true;
      this.all.add(env);
      this.stats.environmentsStarted += 1;
    }
    env.busy = true;
    this.busyCount += 1;
    this.stats.invocations += 1;
    this.stats.peakConcurrency = Math.max(this.stats.peakConcurrency, this.busyCount);
    try {
      await env.ready;
      const startedMs = Date.now();
      const reply = await env.invoke(event, arn, requestId, this.fn.timeoutMs ?? 30_000);
      const handlerStartedMs = reply.startedAtMs ?? startedMs;
      const durationMs = reply.durationMs ?? 0;
      const round = (event as { warmWeb?: { round?: unknown } } | null)?.warmWeb?.round;
      const warmRound = typeof round === 'string' ? round : undefined;
      this.records.push({ environment: env.id, arrivedMs, startedMs, handlerStartedMs, endedMs: nowMs(), durationMs, cold, warmRound });
      return reply;
    } catch (err) {
      return { error: { errorType: 'Runtime.InitError', errorMessage: (err as Error).message } };
    } finally {
      env.busy = false;
      this.busyCount -= 1;
      if (env.alive) {
        this.idle.push(env);
        env.idle(this.fn.idleMs ?? 300_000);
      }
    }
  }

  public stop() {
    for (const env of this.all) env.stop();
    this.idle.length = 0;
  }

  public get alive(): number {
    return [...this.all].filter((e) => e.alive).length;
  }
}

/**
 * A loopback server that speaks Lambda's `Invoke` API and behaves like its environment pool: an idle
 * environment takes the request; with none idle a new one starts (a real process, so a cold start is
 * real); an environment serves one request at a time; idle ones are reclaimed. Point an AWS SDK
 * `LambdaClient` at `endpoint` (or set `AWS_ENDPOINT_URL_LAMBDA`).
 */
export class LocalLambda {
  private readonly pools = new Map<string, FunctionPool>();
  private server?: http.Server;
  private requestCounter = 0;
  private connections = 0;
  /** Lines the environments wrote to stdout and stderr (EMF metrics, app logs). */
  public readonly logs: string[] = [];

  constructor(functions: LocalFunction[], private readonly region = 'us-east-1', private readonly account = '123456789012') {
    for (const fn of functions) this.pools.set(fn.name, new FunctionPool(fn, () => this.endpoint, (line) => this.logs.push(line)));
  }

  /** The base URL of the Invoke API. */
  public get endpoint(): string {
    const address = this.server?.address() as AddressInfo | undefined;
    if (!address) throw new Error('LocalLambda is not started');
    return `http://127.0.0.1:${address.port}`;
  }

  /** The ARN of a function's alias, as the warmer targets it. */
  public aliasArn(name: string, alias = 'live'): string {
    return `arn:aws:lambda:${this.region}:${this.account}:function:${name}:${alias}`;
  }

  /** Every invoke a function served since the last call, oldest first. */
  public takeInvocations(name: string): InvocationRecord[] {
    return this.pool(name).records.splice(0);
  }

  /** Stops every environment of a function, as if Lambda had reclaimed them all. */
  public reclaim(name: string): void {
    this.pool(name).stop();
  }

  /** Connections clients have opened to the endpoint since it started. */
  public get connectionsAccepted(): number {
    return this.connections;
  }

  /** Closes the connections idle between requests, as Lambda's service does with those idle too long. */
  public closeIdleConnections(): void {
    this.server?.closeIdleConnections();
  }

  public stats(name: string): LocalFunctionStats {
    const pool = this.pool(name);
    return { ...pool.stats, environmentsAlive: pool.alive };
  }

  public async start(port = 0): Promise<void> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', () => { this.connections += 1; });
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
  }

  public async stop(): Promise<void> {
    for (const pool of this.pools.values()) pool.stop();
    if (this.server) {
      this.server.closeAllConnections();
      await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    }
  }

  private pool(name: string): FunctionPool {
    const pool = this.pools.get(name);
    if (!pool) throw new Error(`no local function named '${name}'`);
    return pool;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const match = /^\/2015-03-31\/functions\/([^/]+)\/invocations(?:\?|$)/.exec(req.url ?? '');
    if (req.method !== 'POST' || !match) {
      return this.error(res, 404, 'ResourceNotFoundException', `no such API: ${req.method} ${req.url}`);
    }
    // FunctionName may be a name, a partial or full ARN, with or without a qualifier.
    const parts = decodeURIComponent(match[1]).split(':');
    const name = parts.length >= 7 ? parts[6] : parts[0];
    const pool = this.pools.get(name);
    if (!pool) return this.error(res, 404, 'ResourceNotFoundException', `Function not found: ${name}`);

    let event: unknown;
    try {
      event = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf-8')) : {};
    } catch {
      return this.error(res, 400, 'InvalidRequestContentException', 'Could not parse request body into json');
    }
    const requestId = `local-${++this.requestCounter}`;
    const invocationType = req.headers['x-amz-invocation-type'] ?? 'RequestResponse';
    // Checked, not run.
    if (invocationType === 'DryRun') return void res.writeHead(204, { 'x-amzn-requestid': requestId }).end();
    const run = pool.invoke(event, this.aliasArn(name), requestId);
    if (invocationType === 'Event') {
      run.catch(() => undefined);
      res.writeHead(202, { 'x-amzn-requestid': requestId }).end();
      return;
    }
    const reply = await run;
    if (reply === 'throttled') return this.error(res, 429, 'TooManyRequestsException', 'Rate Exceeded.');
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json', 'x-amzn-requestid': requestId, 'x-amz-executed-version': '1' };
    if (reply.error) headers['x-amz-function-error'] = 'Unhandled';
    res.writeHead(200, headers).end(JSON.stringify(reply.error ?? reply.result ?? null));
  }

  private error(res: http.ServerResponse, status: number, type: string, message: string) {
    res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type }).end(JSON.stringify({ Type: 'User', message }));
  }
}
