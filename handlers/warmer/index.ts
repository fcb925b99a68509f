import * as http from 'http';
import * as https from 'https';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import contract from '../../runtime/python/warm_web/warm_contract.json';
import { isCustomResourceEvent, respond } from '../shared/cfn-response';

/** One alias to keep warm, as the schedule (or the pre-warm custom resource) sends it. */
export interface WarmTarget {
  /** ARN of the alias (`...:function:name:live`). */
  readonly functionArn: string;
  /** How many distinct environments to keep warm. */
  readonly concurrency: number;
  /** Hold of every ping until the warmer has seen a warm round; then it learns each ping's hold. */
  readonly holdMs: number;
}

export interface WarmerEvent {
  readonly targets: WarmTarget[];
}

export interface TargetReport {
  readonly functionArn: string;
  readonly expected: number;
  /** Distinct environments that answered in this run, over all its rounds (a top-up may reach more than N). */
  readonly distinct: number;
  readonly coverage: number;
  readonly coldStarts: number;
  readonly rounds: number;
  /** The longest hold a ping of the last round was given (the first ping's, once the spread is learned). */
  readonly holdMs: number;
  /** Sum of the time every environment spent holding: what the pings cost. */
  readonly heldMsTotal: number;
  readonly durationMs: number;
  /** Failed pings by cause (e.g. TooManyRequestsException, FunctionError, TimeoutError). */
  readonly errors: Record<string, number>;
  /** Pings the service throttled (429): at the concurrency limit a top-up only adds throttles, so none follows. */
  readonly throttled: number;
  /** The run's deadline left a round out or cut its pings off (those count as TimeoutError). */
  readonly outOfTime: boolean;
}

/** Rounds per target per run: the first plus at most two top-ups. */
const MAX_ROUNDS = 3;
/** The warmer holds no ping longer than this, whatever the spread (below the shims' MAX_HOLD_MS). */
const LONGEST_HOLD_MS = 10_000;
/** Warm rounds of a target whose spread is remembered: their median is the one learned. */
const HISTORY = 5;
/** Each ping holds this many times its share of the spread still to come after it... */
const SPREAD_FACTOR = 1.25;
/** ...plus this share of the spread, for pings that arrive out of dispatch order. */
const MARGIN_SHARE = 0.1;
/** A short round's top-up holds this many times as long as the round before it. */
const TOP_UP_FACTOR = 2;
/** Holds in the pings' resolution (what the shims' answers carry). */
const PER_MS = Math.round(1 / contract.resolutionMs);
/** What the warmer function's timeout is (lib/warmer.ts): the budget of a run given no Lambda context. */
export const FUNCTION_TIMEOUT_MS = 120_000;
/** Kept from a run's budget to emit its metrics and answer CloudFormation before the function times out. */
export const ANSWER_RESERVE_MS = 5_000;
/**
 * A round starts only with this much time left beyond its longest hold before the run's deadline: a warm
 * ping's round trip on an open connection is tens of milliseconds.
 */
export const ROUND_SLACK_MS = 1_000;
/** A ping is given up this long after its hold ends (a cold environment's INIT, at most 10 s, and more). */
const PING_SLACK_MS = 30_000;
/**
 * Sockets per host: one per concurrent ping, or pings queue and stop overlapping (SDK default is 50); all
 * kept open from the DryRun invokes to the pings (Node keeps 256 idle ones by default).
 */
const MAX_SOCKETS = 1000;

const agentOptions = { keepAlive: true, maxSockets: MAX_SOCKETS, maxFreeSockets: MAX_SOCKETS };
const agents = [new http.Agent(agentOptions), new https.Agent(agentOptions)];
export const lambda = new LambdaClient({
  // A retried ping arrives after the barrier and proves nothing; report the failure instead.
  maxAttempts: 1,
  // Each call is given up by `withTimeout`, at the latest at the run's deadline.
  requestHandler: new NodeHttpHandler({ httpAgent: agents[0], httpsAgent: agents[1] }),
});

/**
 * Runs an Invoke with an abort signal and gives it up after `ms` (answering `onTimeout`), whatever the
 * call does with the signal: the run must answer before the function's timeout.
 */
async function withTimeout<T>(ms: number, onTimeout: T, call: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<T>((resolve) => {
    timer = setTimeout(() => {
      abort.abort();
      resolve(onTimeout);
    }, Math.max(0, ms));
  });
  try {
    return await Promise.race([call(abort.signal), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Closes the connections an earlier run left open (a run's top-ups reuse its own). Lambda freezes this
 * environment between runs and the service may close idle connections meanwhile; a ping written to one
 * would fail, unretried. Waits for each to close: until then the agent could still hand it out.
 */
async function closeConnections() {
  const sockets = agents.flatMap((agent) => [...Object.values(agent.freeSockets), ...Object.values(agent.sockets)].flat());
  await Promise.all(sockets.map((socket) => socket!.closed || new Promise((closed) => socket!.once('close', closed).destroy())));
}

/**
 * Opens a connection per ping before a run's first round, with DryRun invokes (checked, not run: no
 * environment is held), so that the pings go out on open connections. A new connection costs the warmer a
 * TLS handshake on its one vCPU (1.7 ms of CPU each at N = 500 on the bench machine: npm run
 * bench:warmer-tls); inside a round every ping would hold while the handshakes after it are made.
 */
async function connect(target: WarmTarget, deadlineMs: number): Promise<void> {
  const timeoutMs = Math.min(PING_SLACK_MS, deadlineMs - Date.now());
  const dryRun = (abortSignal: AbortSignal) => lambda.send(new InvokeCommand({
    FunctionName: target.functionArn,
    InvocationType: 'DryRun',
  }), { abortSignal }).then(() => undefined, () => undefined);
  await Promise.all(Array.from({ length: target.concurrency }, () => withTimeout(timeoutMs, undefined, dryRun)));
}

interface PingAnswer {
  readonly environmentId?: string;
  readonly coldStart?: boolean;
  readonly receivedAtMs?: number;
  readonly heldMs?: number;
  readonly error?: string;
  /** The service refused the ping for lack of concurrency (429). */
  readonly throttled?: boolean;
}

interface Ping {
  readonly round: string;
  readonly holdUntilMs: number;
  readonly holdForMs?: number;
}

async function ping(target: WarmTarget, hold: Ping, timeoutMs: number): Promise<PingAnswer> {
  return withTimeout(timeoutMs, { error: 'TimeoutError' }, (abortSignal) => invoke(target, hold, abortSignal));
}

async function invoke(target: WarmTarget, hold: Ping, abortSignal: AbortSignal): Promise<PingAnswer> {
  const payload = { warmWeb: { v: contract.protocolVersion, expected: target.concurrency, ...hold } };
  try {
    const out = await lambda.send(new InvokeCommand({
      FunctionName: target.functionArn,
      InvocationType: 'RequestResponse',
      Payload: Buffer.from(JSON.stringify(payload)),
    }), { abortSignal });
    if (out.FunctionError) return { error: 'FunctionError' };
    const body = JSON.parse(Buffer.from(out.Payload ?? []).toString('utf-8') || 'null');
    const answer = body?.warmWeb;
    if (!answer || typeof answer.environmentId !== 'string') {
      return { error: answer?.error ? 'MalformedPing' : 'NotWarmWebShim' };
    }
    return answer;
  } catch (err) {
    const error = (err as Error).name || 'Error';
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    return { error, throttled: error === 'TooManyRequestsException' || status === 429 };
  }
}

/** A target's remembered warm rounds: their arrival spreads, newest last, and how long the last one took. */
const learned = new Map<string, { spreadsMs: number[]; roundMs: number }>();

/** The middle value (the upper one of an even count): one slow round out of the usual does not set the holds. */
export function median(values: readonly number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
}

/** A round's arrival spread: its last warm arrival minus its first, by the environments' clocks. */
export function spreadOf(receivedAtMs: readonly number[]): number {
  return Math.max(...receivedAtMs) - Math.min(...receivedAtMs);
}

/**
 * How long ping k of n holds after it arrives, given the spread learned: SPREAD_FACTOR times its share of
 * the spread still to come after it (the pings go out in order), plus MARGIN_SHARE of the spread for pings
 * that arrive out of order. Rounded up to the answers' resolution, capped at LONGEST_HOLD_MS.
 */
export function holdFor(spreadMs: number, k: number, n: number): number {
  const toCome = n > 1 ? (n - 1 - k) / (n - 1) : 0;
  const ms = spreadMs * (SPREAD_FACTOR * toCome + MARGIN_SHARE);
  // The epsilon keeps float noise (6 * 1.35 = 8.100000000000001) from rounding a hold up.
  return Math.min(Math.max(0, Math.ceil(ms * PER_MS - 1e-6) / PER_MS), LONGEST_HOLD_MS);
}

/**
 * Warms one target within the run's deadline (epoch ms; by default the function's timeout from now, less
 * the reserve to answer): a round starts only if its longest hold and ROUND_SLACK_MS fit before it, and
 * every ping is given up at it at the latest.
 */
export async function warmTarget(target: WarmTarget, deadlineMs = Date.now() + FUNCTION_TIMEOUT_MS - ANSWER_RESERVE_MS): Promise<TargetReport> {
  const started = Date.now();
  const n = target.concurrency;
  // Per concurrency: schedules warm one target at different N, and the spread grows with N.
  const key = `${target.functionArn}#${n}`;
  // Until a warm round has shown how pings arrive, every ping holds to one deadline.
  const fixedHoldMs = Math.min(target.holdMs, LONGEST_HOLD_MS);
  const reached = new Set<string>();
  let coldStarts = 0;
  let heldMsTotal = 0;
  let rounds = 0;
  let holdMs = fixedHoldMs;
  let throttled = 0;
  let outOfTime = false;
  // After a short round (an environment answered twice: it was freed before the last ping arrived), the
  // top-up holds longer: early releases are answered while the dispatch is still under way, which can slow
  // it, and the same holds would fall short again.
  let factor = 1;
  const errors: Record<string, number> = {};
  const fits = (hold: number) => deadlineMs - Date.now() >= hold + ROUND_SLACK_MS;

  while (rounds < MAX_ROUNDS) {
    const seen = learned.get(key);
    const spreadMs = seen && median(seen.spreadsMs) * factor;
    const longest = spreadMs !== undefined ? holdFor(spreadMs, 0, n) : Math.min(fixedHoldMs * factor, LONGEST_HOLD_MS);
    // A failed DryRun (throttled, denied) shows again in the pings, which report it.
    if (rounds === 0 && fits(longest)) await connect(target, deadlineMs);
    if (!fits(longest)) {
      outOfTime = true;
      break;
    }
    rounds += 1;
    holdMs = longest;
    const round = `r-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`;
    const roundStart = Date.now();
    // Once learned, each ping holds for its own share, counted on its environment's clock; holdUntilMs is
    // only a backstop (and what a shim that predates holdForMs holds to): twice the last round or the
    // longest hold, whichever is longer, and never past the point where the round could still answer.
    const backstop = seen ? Math.min(2 * Math.max(seen.roundMs, holdMs), LONGEST_HOLD_MS) : holdMs;
    const holdUntilMs = Math.min(roundStart + backstop, deadlineMs - ROUND_SLACK_MS);
    const timeoutMs = Math.min(holdMs + PING_SLACK_MS, deadlineMs - roundStart);
    const cutByDeadline = timeoutMs < holdMs + PING_SLACK_MS;
    const answers = await Promise.all(Array.from({ length: n }, (_, k) =>
      ping(target, spreadMs !== undefined ? { round, holdUntilMs, holdForMs: holdFor(spreadMs, k, n) } : { round, holdUntilMs }, timeoutMs)));

    const ids = new Set<string>();
    const arrivals: number[] = [];
    let answered = 0;
    let cold = 0;
    let refused = 0;
    answers.forEach((answer) => {
      if (answer.error) {
        errors[answer.error] = (errors[answer.error] ?? 0) + 1;
        if (answer.throttled) refused += 1;
        if (answer.error === 'TimeoutError' && cutByDeadline) outOfTime = true;
        return;
      }
      answered += 1;
      ids.add(answer.environmentId!);
      reached.add(answer.environmentId!);
      heldMsTotal += answer.heldMs ?? 0;
      if (answer.coldStart) cold += 1;
      else if (typeof answer.receivedAtMs === 'number') arrivals.push(answer.receivedAtMs);
    });
    coldStarts += cold;
    throttled += refused;
    // Every warm round teaches, a short one too: leaving those out would remember only the rounds that
    // fit. A round that started environments does not: a cold one's arrival is the end of its INIT, and
    // starting them may have slowed the rest.
    if (cold === 0 && arrivals.length > 0) {
      const spreadsMs = [...(learned.get(key)?.spreadsMs ?? []), spreadOf(arrivals)].slice(-HISTORY);
      learned.set(key, { spreadsMs, roundMs: Date.now() - roundStart });
    }
    if (ids.size < answered) factor *= TOP_UP_FACTOR;
    // Environments that answered in any round of this run are warm: a top-up only has to reach the rest.
    // It still sends N pings: the environments already reached are idle now, and with fewer pings in
    // flight Lambda would hand those out again instead of new ones. At the concurrency limit (a ping
    // throttled) a top-up cannot get more environments, only more throttles.
    if (reached.size >= n || answered === 0 || refused > 0) break;
  }

  const report: TargetReport = {
    functionArn: target.functionArn,
    expected: n,
    distinct: reached.size,
    coverage: Math.min(reached.size, n) / n,
    coldStarts,
    rounds,
    holdMs,
    heldMsTotal,
    durationMs: Date.now() - started,
    errors,
    throttled,
    outOfTime,
  };
  emitMetrics(report);
  const name = functionNameOf(target.functionArn);
  if (throttled > 0) {
    console.warn(`warm-web warmer: ${name}: ${throttled} ping(s) throttled (429), ${reached.size}/${n} environments `
      + 'warm; no top-up: the account\'s (or the function\'s reserved) concurrency is too low for warming.concurrency');
  }
  if (outOfTime) {
    console.warn(`warm-web warmer: ${name}: out of time after ${rounds} round(s), ${reached.size}/${n} environments warm: the run must `
      + `answer before the warmer function's timeout (${errors.TimeoutError ?? 0} ping(s) given up)`);
  }
  return report;
}

function functionNameOf(arn: string): string {
  // arn:aws:lambda:region:account:function:name[:qualifier]
  return arn.split(':')[6] ?? arn;
}

function emitMetrics(report: TargetReport) {
  const errorCount = Object.values(report.errors).reduce((a, b) => a + b, 0);
  process.stdout.write(JSON.stringify({
    _aws: {
      Timestamp: Date.now(),
      CloudWatchMetrics: [{
        Namespace: 'WarmWeb',
        Dimensions: [['FunctionName']],
        Metrics: [
          { Name: 'DistinctEnvironmentsWarmed', Unit: 'Count' },
          { Name: 'WarmCoverage', Unit: 'None' },
          { Name: 'ColdStartsDuringWarm', Unit: 'Count' },
          { Name: 'WarmRoundDurationMs', Unit: 'Milliseconds' },
          { Name: 'WarmPingErrors', Unit: 'Count' },
          { Name: 'WarmPingThrottles', Unit: 'Count' },
        ],
      }],
    },
    FunctionName: functionNameOf(report.functionArn),
    DistinctEnvironmentsWarmed: report.distinct,
    WarmCoverage: report.coverage,
    ColdStartsDuringWarm: report.coldStarts,
    WarmRoundDurationMs: report.durationMs,
    WarmPingErrors: errorCount,
    WarmPingThrottles: report.throttled,
    Target: report.functionArn,
    Errors: report.errors,
    Rounds: report.rounds,
    OutOfTime: report.outOfTime,
  }) + '\n');
}

/** Warms every target at once, all within the run's deadline; one target's failures never stop another's rounds. */
export async function warmAll(targets: WarmTarget[], deadlineMs?: number): Promise<TargetReport[]> {
  await closeConnections();
  return Promise.all(targets.map((t) => warmTarget(t, deadlineMs)));
}

/** Environments one target may ask for: the synth-time cap of WarmSchedule, enforced again for tokens. */
const MAX_CONCURRENCY = 1000;

/** A count given as a number, or as the numeric string a token (a CfnParameter) becomes; else NaN. */
function countOf(raw: unknown): number {
  if (typeof raw === 'number') return raw;
  return typeof raw === 'string' && /^\s*[+-]?\d+(\.\d*)?\s*$/.test(raw) ? Number(raw) : NaN;
}

function concurrencyOf(raw: unknown, field: string): number {
  // The pre-warm gets every schedule's concurrency when one is a token, and warms at the largest.
  if (Array.isArray(raw) && raw.length > 0) return Math.max(...raw.map((c, j) => concurrencyOf(c, `${field}[${j}]`)));
  const concurrency = countOf(raw);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY) {
    throw new Error(`warmer: ${field} must be an integer from 1 to ${MAX_CONCURRENCY}, got ${JSON.stringify(raw)}`);
  }
  return concurrency;
}

/** CloudFormation passes numbers as strings; the schedule passes them as numbers (as strings too, from a token). */
export function parseTargets(raw: unknown): WarmTarget[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new Error(`warmer: expected a non-empty 'targets' list, got ${JSON.stringify(raw)}`);
  }
  return raw.map((t, i) => {
    const functionArn = t?.functionArn;
    if (typeof functionArn !== 'string' || !functionArn.startsWith('arn:')) {
      throw new Error(`warmer: targets[${i}].functionArn must be an alias ARN, got ${JSON.stringify(functionArn)}`);
    }
    const concurrency = concurrencyOf(t.concurrency, `targets[${i}].concurrency`);
    const holdMs = countOf(t.holdMs);
    if (!(holdMs > 0)) throw new Error(`warmer: targets[${i}].holdMs must be a number above 0, got ${JSON.stringify(t.holdMs)}`);
    return { functionArn, concurrency, holdMs };
  });
}

/** The part of Lambda's context the warmer reads. */
export interface WarmerContext {
  getRemainingTimeInMillis(): number;
}

/** The CloudFormation answer is sent before this much is left of the function's time, or given up. */
const RESPONSE_MARGIN_MS = 500;

/**
 * Scheduled runs get `{ targets }`. The pre-warm custom resource (one per published version) gets a
 * CloudFormation event; it warms on Create and Update and always reports SUCCESS, because a deploy must
 * not fail or roll back over a warm-up: the outcome is in the response reason and data and the metrics.
 * Either way the rounds end ANSWER_RESERVE_MS before the function's timeout (from `context`).
 */
export async function handler(event: unknown, context?: WarmerContext): Promise<TargetReport[] | void> {
  const endMs = Date.now() + (context?.getRemainingTimeInMillis() ?? FUNCTION_TIMEOUT_MS);
  const deadlineMs = endMs - ANSWER_RESERVE_MS;
  if (isCustomResourceEvent(event)) {
    const physicalResourceId = event.PhysicalResourceId ?? `warm-web-prewarm-${event.LogicalResourceId}`;
    const answer = async (reason: string, data?: Record<string, unknown>) =>
      respond(event, { status: 'SUCCESS', reason, physicalResourceId, data }, endMs - RESPONSE_MARGIN_MS);
    if (event.RequestType === 'Delete') return answer('nothing to delete');
    let reports: TargetReport[];
    try {
      reports = await warmAll(parseTargets(event.ResourceProperties.Targets), deadlineMs);
    } catch (err) {
      const message = (err as Error).message;
      console.error(`warm-web warmer: pre-warm skipped, the deploy goes on: ${message}`);
      return answer(`pre-warm skipped: ${message}`, { Error: message });
    }
    const summary = reports.map((r) => `${functionNameOf(r.functionArn)}: ${r.distinct}/${r.expected}${notes(r)}`).join(', ');
    return answer(`pre-warmed ${summary}`, { Summary: summary });
  }
  const reports = await warmAll(parseTargets((event as WarmerEvent | undefined)?.targets), deadlineMs);
  console.log(JSON.stringify({ warmer: 'done', reports }));
  return reports;
}

/** Why a pre-warm reached fewer than N, for the CloudFormation reason. */
function notes(report: TargetReport): string {
  const why = [
    ...(report.throttled > 0 ? [`${report.throttled} throttled`] : []),
    ...(report.outOfTime ? ['out of time'] : []),
  ];
  return why.length > 0 ? ` (${why.join(', ')})` : '';
}
