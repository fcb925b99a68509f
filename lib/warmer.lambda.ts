import * as http from 'http';
import * as https from 'https';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { isCustomResourceEvent, respond } from './private/cfn-response';

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
  /** Distinct environments that answered within one round (the best round). */
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
}

/** Rounds per target per run: the first plus at most two top-ups. */
const MAX_ROUNDS = 3;
/** Holds never grow past this, whatever the spread. */
const MAX_HOLD_MS = 10_000;
/** Share of the whole predicted spread every ping holds on top of its own wait: runs differ in dispatch speed. */
const SPARE = 0.2;
/** A round with an environment that answered twice: the top-up and the next run hold this much longer. */
const WIDEN = 1.5;
/** The least a hold leaves after the predicted last arrival (timer and clock granularity). */
const MIN_MARGIN_MS = 0.5;
/** A clean run forgets this much of a slower past per run, so one slow run widens a few after it. */
const DECAY = 0.8;
/** Sockets per host: one per concurrent ping, or pings queue and stop overlapping (SDK default is 50). */
const MAX_SOCKETS = 1000;

const agentOptions = { keepAlive: true, maxSockets: MAX_SOCKETS };
export const lambda = new LambdaClient({
  // A retried ping arrives after the barrier and proves nothing; report the failure instead.
  maxAttempts: 1,
  requestHandler: new NodeHttpHandler({
    httpAgent: new http.Agent(agentOptions),
    httpsAgent: new https.Agent(agentOptions),
    requestTimeout: MAX_HOLD_MS + 30_000,
  }),
});

interface PingAnswer {
  readonly environmentId?: string;
  readonly coldStart?: boolean;
  readonly receivedAtMs?: number;
  readonly heldMs?: number;
  readonly error?: string;
}

interface Ping {
  readonly round: string;
  readonly holdUntilMs: number;
  readonly holdForMs?: number;
}

async function ping(target: WarmTarget, hold: Ping): Promise<PingAnswer> {
  const payload = { warmWeb: { v: 1, expected: target.concurrency, ...hold } };
  try {
    const out = await lambda.send(new InvokeCommand({
      FunctionName: target.functionArn,
      InvocationType: 'RequestResponse',
      Payload: Buffer.from(JSON.stringify(payload)),
    }));
    if (out.FunctionError) return { error: 'FunctionError' };
    const body = JSON.parse(Buffer.from(out.Payload ?? []).toString('utf-8') || 'null');
    const answer = body?.warmWeb;
    if (!answer || typeof answer.environmentId !== 'string') {
      return { error: answer?.error ? 'MalformedPing' : 'NotWarmWebShim' };
    }
    return answer;
  } catch (err) {
    return { error: (err as Error).name || 'Error' };
  }
}

/**
 * How a target's pings arrive, learned from its clean runs. Pings are sent in order and arrive in about
 * that order, one every `msPerPing`; ping k must hold until the last one has arrived.
 */
export interface DispatchPlan {
  /** Arrival spread per dispatch index. */
  readonly msPerPing: number;
  /** Held after the predicted last arrival. */
  readonly marginMs: number;
  /** How long the round took, from its start to its last answer, by the warmer's clock. */
  readonly roundMs: number;
}

/** Learned across runs of a warm warmer, per target and concurrency. */
const plans = new Map<string, DispatchPlan>();

/**
 * How long ping k of n holds after it arrives: the arrivals still to come, plus SPARE of the whole spread
 * and the margin. Every ping gets the spare, because one released before the last arrival is answered
 * while the dispatch is still under way, which can slow the rest and free more early.
 */
export function holdFor(plan: DispatchPlan, k: number, n: number): number {
  return Math.min(Math.round(((n - 1 - k + SPARE * (n - 1)) * plan.msPerPing + plan.marginMs) * 10) / 10, MAX_HOLD_MS);
}

/**
 * The plan after a clean round, from the warm environments' arrival times and the pings' dispatch order:
 * the arrival spread per index, and the margin that would have covered every ping that arrived out of order.
 * A slower past fades by DECAY per run.
 */
export function learnPlan(
  previous: DispatchPlan | undefined, arrivals: Array<{ k: number; receivedAtMs: number }>, n: number, roundMs: number,
): DispatchPlan {
  const times = arrivals.map((a) => a.receivedAtMs);
  const indices = arrivals.map((a) => a.k);
  const last = Math.max(...times);
  const span = Math.max(...indices) - Math.min(...indices);
  const msPerPing = Math.max(span > 0 ? (last - Math.min(...times)) / span : 0, DECAY * (previous?.msPerPing ?? 0));
  const needed = Math.max(...arrivals.map((a) => last - a.receivedAtMs - (n - 1 - a.k + SPARE * (n - 1)) * msPerPing));
  return {
    msPerPing,
    marginMs: Math.min(Math.max(MIN_MARGIN_MS, needed, DECAY * (previous?.marginMs ?? 0)), MAX_HOLD_MS),
    roundMs,
  };
}

function widen(plan: DispatchPlan): DispatchPlan {
  return { ...plan, msPerPing: plan.msPerPing * WIDEN, marginMs: Math.min(plan.marginMs * WIDEN, MAX_HOLD_MS) };
}

export async function warmTarget(target: WarmTarget): Promise<TargetReport> {
  const started = Date.now();
  const n = target.concurrency;
  // Per concurrency: schedules warm one target at different N, and the spread grows with N.
  const planKey = `${target.functionArn}#${n}`;
  // Until a warm round has shown how pings arrive, every ping holds to one deadline.
  let fixedHoldMs = Math.min(target.holdMs, MAX_HOLD_MS);
  let best = new Set<string>();
  let coldStarts = 0;
  let heldMsTotal = 0;
  let rounds = 0;
  let holdMs = fixedHoldMs;
  const errors: Record<string, number> = {};

  while (rounds < MAX_ROUNDS) {
    rounds += 1;
    const round = `r-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`;
    const plan = plans.get(planKey);
    const roundStart = Date.now();
    // With a plan, each ping holds for its own share, counted on its environment's clock; holdUntilMs is
    // only a backstop (and what a shim that predates holdForMs holds to): twice the last clean round or
    // the longest hold, whichever is longer.
    holdMs = plan ? holdFor(plan, 0, n) : fixedHoldMs;
    const holdUntilMs = roundStart + (plan ? Math.min(2 * Math.max(plan.roundMs, holdMs), MAX_HOLD_MS) : fixedHoldMs);
    const answers = await Promise.all(Array.from({ length: n }, (_, k) =>
      ping(target, plan ? { round, holdUntilMs, holdForMs: holdFor(plan, k, n) } : { round, holdUntilMs })));

    const ids = new Set<string>();
    const arrivals: Array<{ k: number; receivedAtMs: number }> = [];
    let answered = 0;
    answers.forEach((answer, k) => {
      if (answer.error) {
        errors[answer.error] = (errors[answer.error] ?? 0) + 1;
        return;
      }
      answered += 1;
      ids.add(answer.environmentId!);
      heldMsTotal += answer.heldMs ?? 0;
      if (answer.coldStart) coldStarts += 1;
      // A cold environment's arrival is the end of its INIT, not of the dispatch.
      else if (typeof answer.receivedAtMs === 'number') arrivals.push({ k, receivedAtMs: answer.receivedAtMs });
    });
    if (ids.size > best.size) best = ids;
    // An environment that answered twice was freed before the round's last ping arrived: the holds were
    // short. Its arrivals are no guide (each early release can slow the dispatch still under way): the top-up
    // and the next run hold longer than planned, and clean runs shrink it back. A fixed hold (nothing
    // learned yet, mostly cold environments) doubles.
    const short = ids.size < answered;
    if (!short && arrivals.length > 0) {
      plans.set(planKey, learnPlan(plan, arrivals, n, Date.now() - roundStart));
    } else if (short && plan) {
      plans.set(planKey, widen(plan));
    } else if (short) {
      fixedHoldMs = Math.min(fixedHoldMs * 2, MAX_HOLD_MS);
    }
    if (best.size >= n || answered === 0) break;
  }

  const report: TargetReport = {
    functionArn: target.functionArn,
    expected: n,
    distinct: best.size,
    coverage: best.size / n,
    coldStarts,
    rounds,
    holdMs,
    heldMsTotal,
    durationMs: Date.now() - started,
    errors,
  };
  emitMetrics(report);
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
        ],
      }],
    },
    FunctionName: functionNameOf(report.functionArn),
    DistinctEnvironmentsWarmed: report.distinct,
    WarmCoverage: report.coverage,
    ColdStartsDuringWarm: report.coldStarts,
    WarmRoundDurationMs: report.durationMs,
    WarmPingErrors: errorCount,
    Target: report.functionArn,
    Errors: report.errors,
    Rounds: report.rounds,
  }) + '\n');
}

/** Warms every target at once; one target's failures never stop another's rounds. */
export async function warmAll(targets: WarmTarget[]): Promise<TargetReport[]> {
  return Promise.all(targets.map((t) => warmTarget(t)));
}

/** CloudFormation passes numbers as strings; the schedule passes them as numbers. */
export function parseTargets(raw: unknown): WarmTarget[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new Error(`warmer: expected a non-empty 'targets' list, got ${JSON.stringify(raw)}`);
  }
  return raw.map((t, i) => {
    const functionArn = String(t?.functionArn ?? '');
    const concurrency = Number(t?.concurrency);
    const holdMs = Number(t?.holdMs);
    if (!functionArn.startsWith('arn:') || !Number.isInteger(concurrency) || concurrency < 1 || !(holdMs > 0)) {
      throw new Error(`warmer: target ${i} is malformed: ${JSON.stringify(t)}`);
    }
    return { functionArn, concurrency, holdMs };
  });
}

/**
 * Scheduled runs get `{ targets }`. The pre-warm custom resource (one per published version) gets a
 * CloudFormation event; it warms on Create and Update and always reports SUCCESS, because a deploy must
 * not fail or roll back over a warm-up: the outcome is in the response data and the metrics.
 */
export async function handler(event: unknown): Promise<TargetReport[] | void> {
  if (isCustomResourceEvent(event)) {
    const physicalResourceId = event.PhysicalResourceId ?? `warm-web-prewarm-${event.LogicalResourceId}`;
    if (event.RequestType === 'Delete') {
      return respond(event, { status: 'SUCCESS', reason: 'nothing to delete', physicalResourceId });
    }
    try {
      const reports = await warmAll(parseTargets(event.ResourceProperties.Targets));
      const summary = reports.map((r) => `${functionNameOf(r.functionArn)}: ${r.distinct}/${r.expected}`).join(', ');
      return await respond(event, { status: 'SUCCESS', reason: `pre-warmed ${summary}`, physicalResourceId, data: { Summary: summary } });
    } catch (err) {
      return respond(event, { status: 'SUCCESS', reason: `pre-warm skipped: ${(err as Error).message}`, physicalResourceId });
    }
  }
  const reports = await warmAll(parseTargets((event as WarmerEvent | undefined)?.targets));
  console.log(JSON.stringify({ warmer: 'done', reports }));
  return reports;
}
