// `cdk-warm-web manage`: runs a command inside the deployed function through the command event
// (docs/RUNTIME_CONTRACT.md "Command event") on its `live` alias or a published version, never $LATEST.
import { parseArgs } from 'util';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { CloudFormationError, QueryStackReader, type StackReader } from './cloudformation';

export const MANAGE_HELP = `Usage: cdk-warm-web manage [options] [--] <command> [args...]

Runs a command inside the deployed function (a Django management command by default) and prints its
output; exits with the command's exit status.

Which function:
  --function, -f <name|arn>   the function (name, ARN or ARN with a qualifier)
  --stack, -s <name>          or the CloudFormation stack that holds it
  --id <id>                   with --stack: the WarmWebFunction's construct path (e.g. Web or MyStack/Web)
                              or its function's or alias's logical id, when the stack has several
  --qualifier, -q <qualifier> the alias or version to run on (default: live; $LATEST is refused)
  --region <region>           the function's region (default: from the ARN, else the AWS config)
  --profile <name>            the AWS profile (default: AWS_PROFILE, else the default chain)

What to run:
  --django                    a Django management command (the default): manage -- migrate --noinput
  --flask                     a Flask CLI command of the function's app: manage --flask -- db upgrade
  --function-target <target>  a function of the app called with the args as a list of strings:
                              module:function (Python) or path/module.export (Node)
  --json                      print the answer as JSON instead of the command's output

Who may run commands is who may invoke the alias (lambda:InvokeFunction on it): a command never
arrives over HTTP. Output is capped at 1 MiB (the end is kept; all of it is in the function's log).
`;

/** Where the CLI writes and what it talks to; tests give their own. */
export interface ManageIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** A Lambda client for a region (and profile). */
  readonly lambda: (region: string | undefined, profile: string | undefined) => LambdaClient;
  /** A CloudFormation reader with the Lambda client's region and credentials. */
  readonly stacks?: (lambda: LambdaClient) => Promise<StackReader>;
}

export class UsageError extends Error {}

export interface ManageOptions {
  readonly functionName?: string;
  readonly stack?: string;
  readonly id?: string;
  readonly qualifier: string;
  readonly region?: string;
  readonly profile?: string;
  readonly json: boolean;
  readonly help: boolean;
  /** The command event's `warmWebCommand` value. */
  readonly command: { v: 1; kind: string; args: string[]; target?: string };
}

const PYTHON_TARGET = /^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$/;
const NODE_TARGET = /^(?!\/)(?:[A-Za-z0-9_@.-]+\/)*[A-Za-z0-9_@-][A-Za-z0-9_@.-]*\.[A-Za-z_$][A-Za-z0-9_$]*$/;
const QUALIFIER = /^(?:[1-9][0-9]*|[a-zA-Z0-9_-]*[a-zA-Z_-][a-zA-Z0-9_-]*)$/;
const FUNCTION_ARN = /^arn:aws[a-zA-Z-]*:lambda:([a-z0-9-]+):\d{12}:function:([a-zA-Z0-9_-]+)(?::([^:]+))?$/;
const LATEST = 'cdk-warm-web manage: $LATEST is refused: it is the unpublished code, not what the live alias serves (a command on it runs against code no request runs); give --qualifier live (the default) or a published version number';

export function parseManageArgs(argv: readonly string[]): ManageOptions {
  const split = argv.indexOf('--');
  const head = split < 0 ? argv : argv.slice(0, split);
  let parsed;
  try {
    parsed = parseArgs({
      args: [...head],
      allowPositionals: true,
      strict: true,
      options: {
        'function': { type: 'string', short: 'f' },
        'stack': { type: 'string', short: 's' },
        'id': { type: 'string' },
        'qualifier': { type: 'string', short: 'q' },
        'region': { type: 'string' },
        'profile': { type: 'string' },
        'django': { type: 'boolean' },
        'flask': { type: 'boolean' },
        'function-target': { type: 'string' },
        'json': { type: 'boolean' },
        'help': { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    const message = (error as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(`${message}; put the command after -- when it has options of its own (manage -- migrate --noinput)`);
  }
  const { values } = parsed;
  const args = [...parsed.positionals, ...(split < 0 ? [] : argv.slice(split + 1))];
  const help = values.help === true;
  const kinds = [values.django && '--django', values.flask && '--flask', values['function-target'] !== undefined && '--function-target'].filter(Boolean);
  if (kinds.length > 1) {
    throw new UsageError(`give one of --django, --flask and --function-target, not ${kinds.join(' and ')}`);
  }
  const target = values['function-target'];
  if (target !== undefined && !PYTHON_TARGET.test(target) && !NODE_TARGET.test(target)) {
    throw new UsageError(`--function-target ${JSON.stringify(target)} is not module:function (Python) or path/module.export (Node)`);
  }
  const kind = values.flask ? 'flask' : target !== undefined ? 'function' : 'django';
  if (!help) {
    if (values.function !== undefined && values.stack !== undefined) {
      throw new UsageError('give --function or --stack, not both');
    }
    if (values.function === undefined && values.stack === undefined) {
      throw new UsageError('give the function: --function <name|arn>, or --stack <name> (with --id when it holds several)');
    }
    if (values.id !== undefined && values.stack === undefined) {
      throw new UsageError('--id picks a function of a stack: give --stack too');
    }
    if (kind !== 'function' && args.length === 0) {
      throw new UsageError(`give the ${kind} command to run, e.g. manage ${kind === 'flask' ? '--flask -- routes' : '-- migrate --noinput'}`);
    }
  }
  const qualifier = values.qualifier ?? 'live';
  if (qualifier === '$LATEST') {
    throw new UsageError(LATEST);
  }
  if (!QUALIFIER.test(qualifier)) {
    throw new UsageError(`--qualifier ${JSON.stringify(qualifier)} is not an alias name or a version number`);
  }
  return {
    functionName: values.function,
    stack: values.stack,
    id: values.id,
    qualifier,
    region: values.region,
    profile: values.profile,
    json: values.json === true,
    help,
    command: { v: 1, kind, args, ...(target !== undefined ? { target } : {}) },
  };
}

interface Target {
  /** Function name or unqualified ARN. */
  readonly functionName: string;
  readonly qualifier: string;
  readonly region?: string;
}

/** The function named by --function: a name, an ARN, or either with a qualifier (name:live, arn:...:7). */
function fromFunctionOption(value: string, qualifier: string, qualifierGiven: boolean): Target {
  const arn = FUNCTION_ARN.exec(value);
  const [name, named] = arn ? [arn[2], arn[3]] : value.split(':', 2);
  if (!/^[a-zA-Z0-9_-]{1,140}$/.test(name) || (!arn && value.split(':').length > 2)) {
    throw new UsageError(`--function ${JSON.stringify(value)} is not a function name or ARN`);
  }
  if (named === undefined) {
    return { functionName: value, qualifier, region: arn?.[1] };
  }
  if (named === '$LATEST') {
    throw new UsageError(LATEST);
  }
  if (!QUALIFIER.test(named)) {
    throw new UsageError(`--function ${value}: ${JSON.stringify(named)} is not an alias name or a version number`);
  }
  if (qualifierGiven && named !== qualifier) {
    throw new UsageError(`--function ${value} names qualifier ${named} and --qualifier says ${qualifier}: give one`);
  }
  return { functionName: value.slice(0, value.length - named.length - 1), qualifier: named, region: arn?.[1] };
}

interface Candidate {
  readonly aliasId: string;
  readonly functionId?: string;
  readonly path?: string;
}

/** The WarmWebFunction of a stack: the `live` aliases of its template, picked by --id. */
export async function fromStack(stacks: StackReader, stack: string, id: string | undefined): Promise<string> {
  const template = await stacks.template(stack);
  type Resource = { Type?: string; Properties?: Record<string, unknown>; Metadata?: Record<string, unknown> };
  const resources = (template.Resources ?? {}) as Record<string, Resource>;
  const candidates: Candidate[] = [];
  for (const [logicalId, resource] of Object.entries(resources)) {
    if (resource.Type !== 'AWS::Lambda::Alias' || resource.Properties?.Name !== 'live') {
      continue;
    }
    const ref = resource.Properties?.FunctionName as { Ref?: string } | undefined;
    const cdkPath = resource.Metadata?.['aws:cdk:path'];
    // The WarmWebFunction's path: the alias is its child (<path>/LiveAlias/Resource).
    const path = typeof cdkPath === 'string' ? cdkPath.replace(/\/Resource$/, '').replace(/\/[^/]+$/, '') : undefined;
    candidates.push({ aliasId: logicalId, functionId: ref?.Ref, path });
  }
  const describe = (list: Candidate[]): string => list.map((c) => c.path ?? c.aliasId).join(', ');
  const picked = id === undefined ? candidates : candidates.filter((c) => c.aliasId === id || c.functionId === id
    || (c.path !== undefined && (c.path === id || c.path.endsWith(`/${id}`) || c.path === `${stack}/${id}`)));
  if (picked.length === 0) {
    throw new UsageError(candidates.length === 0
      ? `stack ${stack} has no function with a live alias (no WarmWebFunction)`
      : `no function of stack ${stack} matches --id ${id}; its functions: ${describe(candidates)}`);
  }
  if (picked.length > 1) {
    throw new UsageError(`stack ${stack} has ${picked.length} functions${id === undefined ? '' : ` matching --id ${id}`}: ${describe(picked)}; pick one with --id <construct path>`);
  }
  return stacks.physicalId(stack, picked[0].aliasId);
}

interface CommandAnswer {
  readonly exitCode?: number;
  readonly output?: string;
  readonly truncated?: boolean;
  readonly error?: string;
}

/** Runs `manage` with `argv` (after the word `manage`); the process's exit status. */
export async function manage(argv: readonly string[], io: ManageIo): Promise<number> {
  let options: ManageOptions;
  try {
    options = parseManageArgs(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`cdk-warm-web manage: ${error.message.replace(/^cdk-warm-web manage: /, '')}\nRun cdk-warm-web manage --help for the options.\n`);
      return 2;
    }
    throw error;
  }
  if (options.help) {
    io.out(MANAGE_HELP);
    return 0;
  }
  try {
    return await run(options, io, argv.some((a) => a === '--qualifier' || a === '-q' || a.startsWith('--qualifier=')));
  } catch (error) {
    io.err(`cdk-warm-web manage: ${explain(error)}\n`);
    return error instanceof UsageError ? 2 : 1;
  }
}

async function run(options: ManageOptions, io: ManageIo, qualifierGiven: boolean): Promise<number> {
  let target: Target;
  let lambda: LambdaClient;
  if (options.functionName !== undefined) {
    target = fromFunctionOption(options.functionName, options.qualifier, qualifierGiven);
    lambda = io.lambda(options.region ?? target.region, options.profile);
  } else {
    lambda = io.lambda(options.region, options.profile);
    const stacks = await (io.stacks ?? defaultStacks)(lambda);
    const aliasArn = await fromStack(stacks, options.stack!, options.id);
    const [, region] = FUNCTION_ARN.exec(aliasArn) ?? [];
    target = { functionName: aliasArn.replace(/:[^:]+$/, ''), qualifier: options.qualifier, region };
  }
  const response = await lambda.send(new InvokeCommand({
    FunctionName: target.functionName,
    Qualifier: target.qualifier,
    InvocationType: 'RequestResponse',
    Payload: Buffer.from(JSON.stringify({ warmWebCommand: options.command })),
  }));
  const text = Buffer.from(response.Payload ?? []).toString('utf8');
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    payload = text;
  }
  const where = `${target.functionName}:${target.qualifier}`;
  if (response.FunctionError) {
    const { errorType, errorMessage } = (payload ?? {}) as { errorType?: string; errorMessage?: string };
    const timedOut = errorType === 'Sandbox.Timedout' || /Task timed out/.test(errorMessage ?? '');
    io.err(timedOut
      ? `cdk-warm-web manage: ${where} timed out before the command could be stopped: ${errorMessage}\n`
      : `cdk-warm-web manage: ${where} failed (${response.FunctionError}): ${errorType ?? 'Error'}: ${errorMessage ?? text}\n`);
    return 1;
  }
  const answer = (payload as { warmWebCommand?: CommandAnswer } | null)?.warmWebCommand;
  if (typeof answer !== 'object' || answer === null) {
    io.err(`cdk-warm-web manage: ${where} did not answer the command (its warm-web layer predates commands, or it is not a WarmWebFunction): ${text.slice(0, 300)}\n`);
    return 1;
  }
  if (options.json) {
    io.out(`${JSON.stringify(payload)}\n`);
  }
  if (answer.error !== undefined) {
    io.err(`cdk-warm-web manage: ${where} refused the command: ${answer.error}\n`);
    return 1;
  }
  if (!options.json && answer.output) {
    io.out(answer.output);
  }
  if (answer.truncated) {
    io.err('cdk-warm-web manage: the output was cut to its last 1 MiB; all of it is in the function\'s log\n');
  }
  const code = answer.exitCode ?? 1;
  return Number.isInteger(code) && code >= 0 && code <= 255 ? code : 1;
}

function explain(error: unknown): string {
  const name = (error as { name?: string }).name;
  const message = (error as Error).message ?? String(error);
  if (error instanceof UsageError || error instanceof CloudFormationError) {
    return message;
  }
  switch (name) {
    case 'TooManyRequestsException':
      return `the invoke was throttled (the function has no concurrency free; retry, or raise its reserved concurrency): ${message}`;
    case 'ResourceNotFoundException':
      return `not found: ${message}`;
    case 'AccessDeniedException':
    case 'AccessDenied':
      return `not allowed to invoke the function: running a command needs lambda:InvokeFunction on its alias: ${message}`;
    default:
      return `${name && name !== 'Error' ? `${name}: ` : ''}${message}`;
  }
}

async function defaultStacks(lambda: LambdaClient): Promise<StackReader> {
  return new QueryStackReader({ region: await lambda.config.region(), credentials: lambda.config.credentials });
}

/** The Lambda client the CLI uses: one attempt (a retry could run the command twice), no request timeout. */
export function lambdaClient(region: string | undefined, profile: string | undefined): LambdaClient {
  return new LambdaClient({ region, profile, maxAttempts: 1 });
}
