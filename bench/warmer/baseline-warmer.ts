// The warmer's hold planner before the simple rule (handlers/warmer/index.ts at b4881f6), kept as the
// baseline npm run bench:warmer measures the rule against: the same rounds, top-ups, connections and
// metrics, with `choosePlan` choosing each ping's hold. Only the bench runs it.
import * as http from 'http';
import * as https from 'https';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { NodeHttpHandler } from '@smithy/node-http-handler';

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
  /** The longest hold a ping of the last round was given (the first ping's, once the plan is learned). */
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
/** Holds never grow past this, whatever the spread. */
const MAX_HOLD_MS = 10_000;
/** Rounds of a target remembered to choose its holds from: at one run per 5 minutes, 75 minutes. */
const HISTORY = 15;
/** Multiples of the median arrival rate a plan is chosen from: 0.5 to 2.5 in steps of 0.05. */
const SCALES = Array.from({ length: 41 }, (_, i) => (10 + i) / 20);
/** A short round's top-up holds this much longer than the round before it. */
const WIDEN = 1.5;
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
  const payload = { warmWeb: { v: 1, expected: target.concurrency, ...hold } };
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

/** A past round of a target: how long each ping, by dispatch index, had to wait for the last arrival. */
export interface PastRound {
  /** Undefined where no warm environment answered (a cold one's arrival is the end of its INIT). */
  readonly needMs: ReadonlyArray<number | undefined>;
  /** An environment answered twice: freed early, it was answered while the dispatch was still under way. */
  readonly short: boolean;
  /**
   * Short, or a ping waited longer for the last arrival than it was held (by the arrival times its
   * environments saw). Only `short` for a round held to one deadline.
   */
  readonly overran: boolean;
}

/**
 * The holds of a target's next round: ping k holds `(n - 1 - k) * msPerPing * scale + marginMs` after it
 * arrives, the pings still to come and a margin.
 */
export interface DispatchPlan {
  /** Median arrival spread per dispatch index of the remembered rounds. */
  readonly msPerPing: number;
  /** The multiple of msPerPing that each ping still to come adds. */
  readonly scale: number;
  readonly marginMs: number;
  /** How long the last round took, from its start to its last answer, by the warmer's clock. */
  readonly roundMs: number;
}

/** Remembered rounds and the plan chosen over them, per target and concurrency. */
const learned = new Map<string, { rounds: PastRound[]; plan: DispatchPlan }>();

/** How long ping k of n holds after it arrives (rounded up to 0.1 ms, capped at 10 s). */
export function holdFor(plan: DispatchPlan, k: number, n: number): number {
  const ms = (n - 1 - k) * plan.msPerPing * plan.scale + plan.marginMs;
  // The epsilon keeps float noise (0.2 * 1.5 = 0.30000000000000004) from rounding a hold up.
  return Math.min(Math.max(0, Math.ceil(ms * 10 - 1e-6) / 10), MAX_HOLD_MS);
}

/** What a round teaches, from the warm answers' arrival times, the pings' dispatch order and its plan. */
export function pastRound(arrivals: Array<{ k: number; receivedAtMs: number }>, n: number, short = false, plan?: DispatchPlan): PastRound {
  const last = Math.max(...arrivals.map((a) => a.receivedAtMs));
  const needMs: Array<number | undefined> = new Array(n).fill(undefined);
  for (const a of arrivals) needMs[a.k] = last - a.receivedAtMs;
  const overran = short || (plan !== undefined && needMs.some((need, k) => need !== undefined && need > holdFor(plan, k, n)));
  return { needMs, short, overran };
}

/** A round's arrival spread (the first arrival's wait) per dispatch index between its first and last answer. */
function arrivalRate(round: PastRound): number {
  const answered = round.needMs.flatMap((need, k) => (need === undefined ? [] : [{ need, k }]));
  const span = answered[answered.length - 1].k - answered[0].k;
  return span > 0 ? Math.max(...answered.map((a) => a.need)) / span : 0;
}

/** The least margin that, at this rate, would have held every ping of the round until its last arrival. */
function marginNeeded(round: PastRound, rate: number, n: number): number {
  return round.needMs.reduce<number>((most, need, k) => (need === undefined ? most : Math.max(most, need - (n - 1 - k) * rate)), 0);
}

/**
 * The plan that would have cost least over the remembered rounds. A round whose pings needed more than a
 * plan gives would have overrun it and is charged a top-up round, held WIDEN times as long: all of one if a
 * remembered round was short, less as overruns go unpunished. A plan must cover two in three of the rounds
 * that were not short, fewer as overruns go unpunished but never fewer than half: a top-up widens the
 * holds by a factor, which covers a slower dispatch but not a ping that arrives last out of order. (A short
 * round's arrivals were slowed by its own early releases; they count in the cost, not in that bound.)
 */
export function choosePlan(rounds: readonly PastRound[], n: number, roundMs: number): DispatchPlan {
  const rates = rounds.map(arrivalRate).sort((a, b) => a - b);
  const msPerPing = rates[Math.floor(rates.length / 2)];
  const clean = rounds.filter((r) => !r.short).length;
  // An environment freed a little before the last arrival is not always given the last ping: the service
  // may not know yet that it is free. While no remembered round was short, an overrun is charged
  // 1 / (overruns + 1) of a top-up; one short round brings back the whole (a slow dispatch makes them short).
  const overrunCharge = clean < rounds.length ? 1 : 1 / (rounds.filter((r) => r.overran).length + 1);
  let best: { cost: number; plan?: DispatchPlan } = { cost: Infinity };
  for (const scale of SCALES) {
    const rate = msPerPing * scale;
    // Each round's least margin is a candidate.
    const margins = rounds.map((r) => marginNeeded(r, rate, n));
    for (const marginMs of new Set(margins)) {
      const short = margins.filter((needed) => needed > marginMs).length;
      const uncovered = rounds.filter((r, i) => !r.short && margins[i] > marginMs).length;
      if (uncovered * 2 > clean || uncovered * 3 * overrunCharge > clean) continue;
      const cost = ((rate * n * (n - 1)) / 2 + n * marginMs) * (rounds.length + WIDEN * overrunCharge * short);
      if (cost < best.cost) best = { cost, plan: { msPerPing, scale, marginMs, roundMs } };
    }
  }
  return best.plan!;
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
  const fixedHoldMs = Math.min(target.holdMs, MAX_HOLD_MS);
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
  let widening = 1;
  const errors: Record<string, number> = {};
  const fits = (hold: number) => deadlineMs - Date.now() >= hold + ROUND_SLACK_MS;

  while (rounds < MAX_ROUNDS) {
    const chosen = learned.get(key)?.plan;
    const plan = chosen && { ...chosen, scale: chosen.scale * widening, marginMs: chosen.marginMs * widening };
    const longest = plan ? holdFor(plan, 0, n) : Math.min(fixedHoldMs * widening, MAX_HOLD_MS);
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
    // With a plan, each ping holds for its own share, counted on its environment's clock; holdUntilMs is
    // only a backstop (and what a shim that predates holdForMs holds to): twice the last round or the
    // longest hold, whichever is longer, and never past the point where the round could still answer.
    const backstop = plan ? Math.min(2 * Math.max(plan.roundMs, holdMs), MAX_HOLD_MS) : holdMs;
    const holdUntilMs = Math.min(roundStart + backstop, deadlineMs - ROUND_SLACK_MS);
    const timeoutMs = Math.min(holdMs + PING_SLACK_MS, deadlineMs - roundStart);
    const cutByDeadline = timeoutMs < holdMs + PING_SLACK_MS;
    const answers = await Promise.all(Array.from({ length: n }, (_, k) =>
      ping(target, plan ? { round, holdUntilMs, holdForMs: holdFor(plan, k, n) } : { round, holdUntilMs }, timeoutMs)));

    const ids = new Set<string>();
    const arrivals: Array<{ k: number; receivedAtMs: number }> = [];
    let answered = 0;
    let cold = 0;
    let refused = 0;
    answers.forEach((answer, k) => {
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
      else if (typeof answer.receivedAtMs === 'number') arrivals.push({ k, receivedAtMs: answer.receivedAtMs });
    });
    coldStarts += cold;
    throttled += refused;
    // Every warm round teaches, a short one too: leaving those out would remember only the rounds that
    // fit. A round that started environments does not: a cold one's arrival is the end of its INIT, and
    // starting them may have slowed the rest.
    if (cold === 0 && arrivals.length > 0) {
      const remembered = [...(learned.get(key)?.rounds ?? []), pastRound(arrivals, n, ids.size < answered, plan)].slice(-HISTORY);
      learned.set(key, { rounds: remembered, plan: choosePlan(remembered, n, Date.now() - roundStart) });
    }
    if (ids.size < answered) widening *= WIDEN;
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
