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
  /** Hold for the first round, in ms; later rounds widen it if the dispatch spread needs more. */
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
/** The least a learned deadline leaves after the last arrival (timer and clock granularity). */
const MIN_MARGIN_MS = 5;
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
  readonly heldMs?: number;
  readonly error?: string;
}

async function ping(target: WarmTarget, round: string, holdUntilMs: number): Promise<PingAnswer> {
  const payload = { warmWeb: { v: 1, round, expected: target.concurrency, holdUntilMs } };
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

/** The hold each target needed last time, learned across runs of a warm warmer. */
const learnedHoldMs = new Map<string, number>();

/** Deadline (ms after the round begins) for the next run, from this run's arrival spread. */
export function learnedDeadline(firstArrivalMs: number, lastArrivalMs: number): number {
  return lastArrivalMs + Math.max(0.5 * (lastArrivalMs - firstArrivalMs), MIN_MARGIN_MS);
}

export async function warmTarget(target: WarmTarget): Promise<TargetReport> {
  const started = Date.now();
  let holdMs = Math.min(learnedHoldMs.get(target.functionArn) ?? target.holdMs, MAX_HOLD_MS);
  let best = new Set<string>();
  let coldStarts = 0;
  let heldMsTotal = 0;
  let rounds = 0;
  const errors: Record<string, number> = {};

  while (rounds < MAX_ROUNDS) {
    rounds += 1;
    const round = `r-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`;
    const roundStart = Date.now();
    const holdUntilMs = roundStart + holdMs;
    const answers = await Promise.all(Array.from({ length: target.concurrency }, () => ping(target, round, holdUntilMs)));

    const ids = new Set<string>();
    let lateWarm = 0;
    // When warm environments received their ping, in ms after the round began.
    let firstArrivalMs = Infinity;
    let lastArrivalMs = -Infinity;
    for (const answer of answers) {
      if (answer.error) {
        errors[answer.error] = (errors[answer.error] ?? 0) + 1;
        continue;
      }
      ids.add(answer.environmentId!);
      heldMsTotal += answer.heldMs ?? 0;
      if (answer.coldStart) coldStarts += 1;
      if (!answer.coldStart) {
        // A warm environment that held nothing was reached after the barrier: it may have served
        // another ping of this round first, so the hold was too short for the dispatch spread.
        if ((answer.heldMs ?? 0) <= 0) {
          lateWarm += 1;
        } else {
          const arrivalMs = holdUntilMs - answer.heldMs! - roundStart;
          firstArrivalMs = Math.min(firstArrivalMs, arrivalMs);
          lastArrivalMs = Math.max(lastArrivalMs, arrivalMs);
        }
      }
    }
    if (ids.size > best.size) best = ids;
    if (lateWarm === 0 && lastArrivalMs >= 0) {
      // Next run: the deadline just after the last arrival, with half the spread to spare for jitter
      // (the last arrival moves between runs by about the spread itself: docs/BENCHMARKS.md).
      learnedHoldMs.set(target.functionArn, Math.min(Math.ceil(learnedDeadline(firstArrivalMs, lastArrivalMs)), MAX_HOLD_MS));
    }
    const failed = answers.filter((a) => a.error).length;
    if (best.size >= target.concurrency || failed === answers.length) break;
    if (lateWarm > 0 || failed === 0) {
      // Too short for the dispatch spread: this run's top-up and the next run start wider.
      const wider = Math.min(holdMs * 2, MAX_HOLD_MS);
      learnedHoldMs.set(target.functionArn, wider);
      if (rounds < MAX_ROUNDS) holdMs = wider;
    }
  }

  const report: TargetReport = {
    functionArn: target.functionArn,
    expected: target.concurrency,
    distinct: best.size,
    coverage: best.size / target.concurrency,
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
