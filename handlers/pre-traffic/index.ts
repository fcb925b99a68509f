// The pre-traffic step of a deploy: a CloudFormation custom resource that the `live` alias depends on.
// It runs the migrations on the version just published and warms that version's environments; a failure
// fails the resource, so CloudFormation never moves the alias and rolls the stack back.
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { CustomResourceEvent, isCustomResourceEvent, respond } from '../shared/cfn-response';
import { TargetReport, warmTarget } from '../warmer';

/** What lib/warm-web-deployment.ts puts in the resource's properties (CloudFormation turns numbers into strings). */
export interface PreTrafficProperties {
  /** The ARN of the version just published (`...:function:name:7`): never an alias, never `$LATEST`. */
  readonly FunctionArn: string;
  /** The command events to run, in order (`WebCommand.toEvent()`). */
  readonly Commands?: unknown[];
  /** The function's timeout: one command's invoke is given this plus INIT_SLACK_MS. */
  readonly FunctionTimeoutMs: string | number;
  /** Warm the version's environments: the largest of the concurrencies, each ping held `holdMs` at first. */
  readonly Warm?: { readonly concurrency: unknown; readonly holdMs: unknown };
}

/** Beyond the function's timeout, what one command's invoke may take: a cold start's INIT (at most 10 s) and the round trip. */
export const INIT_SLACK_MS = 15_000;
/** Kept to log and answer CloudFormation before this function times out. */
export const ANSWER_RESERVE_MS = 5_000;
/** What the warm-up may take at most (the warmer's own run, less its reserve). */
export const WARM_BUDGET_MS = 115_000;
/** The end of a command's output put in the CloudFormation reason (which holds about 4 KB in all). */
const REASON_OUTPUT_CHARS = 1_500;

// A retried Invoke would run the command twice: fail the step instead.
export const lambda = new LambdaClient({ maxAttempts: 1 });

/** An update's event also carries the properties it replaces. */
type PreTrafficEvent = CustomResourceEvent<PreTrafficProperties> & { readonly OldResourceProperties?: PreTrafficProperties };

/** The part of Lambda's context the step reads. */
export interface PreTrafficContext {
  getRemainingTimeInMillis(): number;
}

/** The command answer of docs/RUNTIME_CONTRACT.md, as far as the step trusts it. */
interface CommandAnswer {
  readonly exitCode?: unknown;
  readonly output?: unknown;
  readonly truncated?: unknown;
  readonly error?: unknown;
  readonly durationMs?: unknown;
}

/** A step that failed: the message is the CloudFormation reason. */
class StepFailed extends Error {}

export async function handler(event: unknown, context: PreTrafficContext): Promise<void> {
  if (!isCustomResourceEvent(event)) {
    throw new Error(`warm-web pre-traffic: expected a CloudFormation custom resource event, got ${JSON.stringify(event)?.slice(0, 200)}`);
  }
  const endMs = Date.now() + context.getRemainingTimeInMillis();
  const deadlineMs = endMs - ANSWER_RESERVE_MS;
  const physicalResourceId = event.PhysicalResourceId ?? `warm-web-pre-traffic-${event.LogicalResourceId}`;
  const answer = (status: 'SUCCESS' | 'FAILED', reason: string) => {
    (status === 'SUCCESS' ? console.log : console.error)(`warm-web pre-traffic: ${status}: ${reason}`);
    return respond(event, { status, reason, physicalResourceId }, endMs - 500);
  };
  try {
    return await answer('SUCCESS', await run(event as unknown as PreTrafficEvent, deadlineMs));
  } catch (err) {
    const message = err instanceof StepFailed ? err.message : `the pre-traffic step failed: ${(err as Error).message}`;
    return answer('FAILED', message);
  }
}

async function run(event: PreTrafficEvent, deadlineMs: number): Promise<string> {
  if (event.RequestType === 'Delete') return 'nothing to delete';
  const props = event.ResourceProperties;
  const functionArn = props.FunctionArn;
  const version = versionOf(functionArn);
  if (event.RequestType === 'Update') {
    const before = versionOf(event.OldResourceProperties?.FunctionArn);
    // Versions only grow: a lower one is CloudFormation rolling the stack back to the version the alias
    // served before, whose migrations already ran. Running the old code's commands again helps nothing.
    if (Number(version) < Number(before)) return `rollback to version ${version}: nothing run`;
  }
  const timeoutMs = Number(props.FunctionTimeoutMs);
  if (!(timeoutMs > 0)) throw new Error(`FunctionTimeoutMs must be a number above 0, got ${JSON.stringify(props.FunctionTimeoutMs)}`);
  const done: string[] = [];
  for (const command of props.Commands ?? []) {
    done.push(await runCommand(functionArn, command, timeoutMs, deadlineMs));
  }
  if (props.Warm) done.push(warmed(await warmTarget(warmTargetOf(functionArn, props.Warm), Math.min(deadlineMs, Date.now() + WARM_BUDGET_MS))));
  return `version ${version}: ${done.length > 0 ? done.join('; ') : 'nothing to run'}`;
}

/** The version of a version ARN (`arn:aws:lambda:region:account:function:name:7`). */
function versionOf(arn: unknown): string {
  const qualifier = typeof arn === 'string' ? arn.split(':')[7] : undefined;
  if (!qualifier || !/^\d+$/.test(qualifier)) {
    throw new Error(`FunctionArn must be the ARN of a published version, got ${JSON.stringify(arn)}`);
  }
  return qualifier;
}

/** A command as a user would type it, from its event (for the logs and the reason). */
function describe(command: unknown): string {
  const c = (command as { warmWebCommand?: { kind?: string; target?: string; args?: unknown[] } })?.warmWebCommand;
  return [c?.kind === 'function' ? c.target : c?.kind, ...(c?.args ?? [])].join(' ');
}

/**
 * Runs one command on the version and waits for its answer (docs/RUNTIME_CONTRACT.md "Command event").
 * It starts only when the whole invoke fits before the deadline: Lambda goes on running a command whose
 * caller gave up, so a step that failed early could leave a migration running under the old version.
 */
async function runCommand(functionArn: string, command: unknown, functionTimeoutMs: number, deadlineMs: number): Promise<string> {
  const name = describe(command);
  const invokeMs = functionTimeoutMs + INIT_SLACK_MS;
  const leftMs = deadlineMs - Date.now();
  if (leftMs < invokeMs) {
    throw new StepFailed(`'${name}' not run: ${Math.round(leftMs / 1000)} s left of the pre-traffic step, and the command may take `
      + `${Math.round(invokeMs / 1000)} s (the function's timeout and a cold start)`);
  }
  console.log(`warm-web pre-traffic: running '${name}' on ${functionArn}`);
  let out;
  try {
    out = await lambda.send(new InvokeCommand({
      FunctionName: functionArn,
      InvocationType: 'RequestResponse',
      Payload: Buffer.from(JSON.stringify(command)),
    }), { abortSignal: AbortSignal.timeout(invokeMs) });
  } catch (err) {
    const error = err as Error;
    const why = error.name === 'TimeoutError' || error.name === 'AbortError'
      ? `no answer within ${Math.round(invokeMs / 1000)} s (the function's timeout and a cold start)` : `${error.name}: ${error.message}`;
    throw new StepFailed(`'${name}' failed: ${why}`);
  }
  const text = Buffer.from(out.Payload ?? []).toString('utf-8');
  if (out.FunctionError) {
    throw new StepFailed(`'${name}' failed: the function raised (${out.FunctionError}): ${text.slice(-REASON_OUTPUT_CHARS)}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const result = (body as { warmWebCommand?: CommandAnswer })?.warmWebCommand;
  if (!result) {
    throw new StepFailed(`'${name}' failed: the answer is not a cdk-warm-web command answer (a shim without commands?): ${text.slice(0, 300)}`);
  }
  if (typeof result.error === 'string') throw new StepFailed(`'${name}' refused by the function: ${result.error}`);
  const output = typeof result.output === 'string' ? result.output : '';
  // The whole output goes to this step's log; the reason gets its end, where a traceback ends.
  if (output) console.log(output);
  if (result.exitCode !== 0) {
    const tail = output.slice(-REASON_OUTPUT_CHARS);
    throw new StepFailed(`'${name}' failed with exit code ${JSON.stringify(result.exitCode)}: ${output.length > tail.length || result.truncated ? '...' : ''}${tail}`);
  }
  return `'${name}' ran (exit code 0${typeof result.durationMs === 'number' ? `, ${Math.round(result.durationMs)} ms` : ''})`;
}

function warmTargetOf(functionArn: string, warm: { concurrency: unknown; holdMs: unknown }) {
  // CloudFormation hands numbers over as strings; with a token among the schedules, every concurrency.
  const all = (Array.isArray(warm.concurrency) ? warm.concurrency : [warm.concurrency]).map(Number);
  const concurrency = Math.max(...all);
  const holdMs = Number(warm.holdMs);
  if (!Number.isInteger(concurrency) || concurrency < 1 || !(holdMs > 0)) {
    throw new Error(`Warm must hold a concurrency of at least 1 and a holdMs above 0, got ${JSON.stringify(warm)}`);
  }
  return { functionArn, concurrency, holdMs };
}

/**
 * What the warm-up reached. One that no environment answered, while none was throttled and there was time,
 * is a version that cannot serve (its INIT fails): that fails the deploy. Fewer than wanted does not.
 */
function warmed(report: TargetReport): string {
  const errors = Object.entries(report.errors).map(([k, v]) => `${v} ${k}`).join(', ');
  if (report.distinct === 0 && report.throttled === 0 && !report.outOfTime) {
    throw new StepFailed(`warm-up: no environment of the new version answered a warm ping (${errors || 'no answer'}): it cannot serve`);
  }
  return `warmed ${report.distinct}/${report.expected} environments${errors ? ` (${errors})` : ''}`;
}
