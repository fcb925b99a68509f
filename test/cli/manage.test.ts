// `cdk-warm-web manage`: the CLI's logic against a mocked Lambda control plane and a loopback
// CloudFormation Query endpoint, then the bundled CLI end to end against the local Lambda endpoint
// running a real Django project through the real shim.
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import { InvokeCommand, type InvokeCommandOutput, LambdaClient, TooManyRequestsException } from '@aws-sdk/client-lambda';
import { App, Stack } from 'aws-cdk-lib';
import { mockClient } from 'aws-sdk-client-mock';
import { QueryStackReader } from '../../cli/cloudformation';
import { manage, type ManageIo, parseManageArgs } from '../../cli/manage';
import { WarmWebFunction, WebApp, WebCode, WebCommand } from '../../lib';
import { LocalLambda } from '../../local/local-lambda';
import { pythonForTests } from '../local/python';

const REGION = 'eu-west-1';
const CREDENTIALS = { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' };
const ALIAS_ARN = (name: string) => `arn:aws:lambda:${REGION}:123456789012:function:${name}:live`;

/** A CloudFormation Query endpoint on loopback that serves synthesized templates. */
class FakeCloudFormation {
  public readonly requests: Array<{ params: URLSearchParams; authorization: string }> = [];
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      this.requests.push({ params, authorization: String(req.headers.authorization) });
      const stack = this.stacks[params.get('StackName') ?? ''];
      const reply = (status: number, xml: string) => res.writeHead(status, { 'content-type': 'text/xml' }).end(xml);
      if (!stack) {
        return reply(400, `<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id ${escape(params.get('StackName') ?? '')} does not exist</Message></Error></ErrorResponse>`);
      }
      if (params.get('Action') === 'GetTemplate') {
        return reply(200, `<GetTemplateResponse><GetTemplateResult><TemplateBody>${escape(JSON.stringify(stack.template))}</TemplateBody></GetTemplateResult></GetTemplateResponse>`);
      }
      const physical = stack.physical[params.get('LogicalResourceId') ?? ''];
      return reply(200, `<DescribeStackResourceResponse><DescribeStackResourceResult><StackResourceDetail><PhysicalResourceId>${physical}</PhysicalResourceId><ResourceStatus>UPDATE_COMPLETE</ResourceStatus></StackResourceDetail></DescribeStackResourceResult></DescribeStackResourceResponse>`);
    });
  });
  constructor(public readonly stacks: Record<string, { template: unknown; physical: Record<string, string> }>) {}
  public async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }
  public stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A stack as the CDK synthesizes it (with construct paths), its alias logical ids mapped to alias ARNs. */
function synthesized(ids: string[], functionNames: string[]): { template: Record<string, unknown>; physical: Record<string, string> } {
  const app = new App({ context: { 'aws:cdk:enable-path-metadata': true } });
  const stack = new Stack(app, 'Shop');
  const code = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-cli-code-'));
  fs.writeFileSync(path.join(code, 'app.py'), 'app = None\n');
  const fns = ids.map((id) => new WarmWebFunction(stack, id, { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(code) }));
  const template = app.synth().getStackByName('Shop').template as Record<string, unknown>;
  const aliasIds = fns.map((fn) => stack.getLogicalId(fn.alias.node.defaultChild as never));
  const physical = Object.fromEntries(aliasIds.map((id, i) => [id, ALIAS_ARN(functionNames[i])]));
  return { template, physical };
}

const lambdaMock = mockClient(LambdaClient);
let cfnEndpoint: string;
const SHOP = synthesized(['Web', 'Admin'], ['shop-web', 'shop-admin']);
const ADMIN_ALIAS = Object.keys(SHOP.physical).find((id) => id.startsWith('AdminLiveAlias'))!;
type AliasResource = { Properties: { FunctionName: { Ref: string } } };
const ADMIN_FUNCTION = (SHOP.template.Resources as Record<string, AliasResource>)[ADMIN_ALIAS].Properties.FunctionName.Ref;
const cfn = new FakeCloudFormation({ Shop: SHOP, Solo: synthesized(['Site'], ['solo-site']) });

beforeAll(async () => {
  cfnEndpoint = await cfn.start();
});
afterAll(() => cfn.stop());
beforeEach(() => lambdaMock.reset());

/** An Invoke response carrying `payload` (the SDK's blob adapter type is not needed to read it). */
function response(payload: unknown, functionError?: string): InvokeCommandOutput {
  return { $metadata: {}, StatusCode: 200, FunctionError: functionError, Payload: Buffer.from(JSON.stringify(payload)) as never };
}
const answer = (fields: Record<string, unknown>): InvokeCommandOutput => response({ warmWebCommand: { v: 1, ...fields } });

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string; regions: Array<string | undefined> }> {
  let out = '';
  let err = '';
  const regions: Array<string | undefined> = [];
  const io: ManageIo = {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    lambda: (region) => {
      regions.push(region);
      return new LambdaClient({ region: region ?? REGION, credentials: CREDENTIALS, maxAttempts: 1 });
    },
    stacks: async (lambda) => new QueryStackReader({
      region: await lambda.config.region(),
      credentials: lambda.config.credentials,
      endpoint: cfnEndpoint,
    }),
  };
  const code = await manage(argv, io);
  return { code, out, err, regions };
}

const invokes = () => lambdaMock.commandCalls(InvokeCommand).map((call) => call.args[0].input);
const sentEvent = (i = 0) => JSON.parse(Buffer.from(invokes()[i].Payload as Uint8Array).toString('utf8'));

describe('the command line', () => {
  test('--help prints the usage and runs nothing', async () => {
    const { code, out } = await cli(['--help']);
    expect(code).toBe(0);
    expect(out).toMatch(/^Usage: cdk-warm-web manage \[options\] \[--\] <command>/);
    expect(out).toContain('--qualifier, -q <qualifier>');
    expect(invokes()).toHaveLength(0);
  });

  test('the command after -- keeps its own options; the kinds map to WebCommand events', () => {
    expect(parseManageArgs(['-f', 'web', '--', 'migrate', '--noinput']).command).toEqual(WebCommand.django('migrate', '--noinput').toEvent().warmWebCommand);
    expect(parseManageArgs(['-f', 'web', 'check']).command).toEqual(WebCommand.django('check').toEvent().warmWebCommand);
    expect(parseManageArgs(['-f', 'web', '--flask', '--', 'db', 'upgrade']).command).toEqual(WebCommand.flask('db', 'upgrade').toEvent().warmWebCommand);
    expect(parseManageArgs(['-f', 'web', '--function-target', 'tasks:rebuild', '--', '--full']).command).toEqual(WebCommand.function('tasks:rebuild', '--full').toEvent().warmWebCommand);
  });

  test.each([
    [['-f', 'web', '-q', '$LATEST', '--', 'check'], /\$LATEST is refused/],
    [['-f', 'web:$LATEST', '--', 'check'], /\$LATEST is refused/],
    [['-f', `arn:aws:lambda:${REGION}:123456789012:function:web:$LATEST`, '--', 'check'], /\$LATEST is refused/],
    [['-f', 'web:7', '-q', 'live', '--', 'check'], /names qualifier 7 and --qualifier says live/],
    [['-f', 'web', '-q', 'a b', '--', 'check'], /--qualifier "a b" is not an alias name or a version number/],
    [['-f', 'web', 'migrate', '--noinput'], /Unknown option '--noinput'; put the command after --/],
    [['--', 'check'], /give the function: --function <name\|arn>, or --stack <name>/],
    [['-f', 'web', '-s', 'Shop', '--', 'check'], /give --function or --stack, not both/],
    [['-f', 'web', '--id', 'Web', '--', 'check'], /--id picks a function of a stack: give --stack too/],
    [['-f', 'web'], /give the django command to run/],
    [['-f', 'web', '--flask', '--django', '--', 'x'], /give one of --django, --flask and --function-target, not --django and --flask/],
    [['-f', 'web', '--function-target', 'not a target'], /--function-target "not a target" is not module:function/],
    [['-f', 'bad name!', '--', 'check'], /--function "bad name!" is not a function name or ARN/],
  ])('%j is refused with exit 2 and runs nothing', async (argv, message) => {
    const { code, err } = await cli(argv);
    expect(err).toMatch(message);
    expect(err).toMatch(/^cdk-warm-web manage: /);
    expect(code).toBe(2);
    expect(invokes()).toHaveLength(0);
  });
});

describe('invoking the function', () => {
  test('sends the WebCommand event to the live alias, prints the output and exits with the command\'s status', async () => {
    lambdaMock.on(InvokeCommand).resolves(answer({ exitCode: 3, output: 'Operations to perform:\nboom\n', truncated: false, durationMs: 12 }));
    const { code, out, err } = await cli(['--function', 'shop-web', '--', 'migrate', '--noinput']);
    expect(invokes()).toEqual([expect.objectContaining({ FunctionName: 'shop-web', Qualifier: 'live', InvocationType: 'RequestResponse' })]);
    expect(sentEvent()).toEqual(WebCommand.django('migrate', '--noinput').toEvent());
    expect(out).toBe('Operations to perform:\nboom\n');
    expect(err).toBe('');
    expect(code).toBe(3);
  });

  test('a version, and a qualifier or region taken from the ARN', async () => {
    lambdaMock.on(InvokeCommand).resolves(answer({ exitCode: 0, output: '', truncated: false, durationMs: 1 }));
    expect((await cli(['-f', 'shop-web', '-q', '42', '--', 'check'])).code).toBe(0);
    const arn = await cli(['-f', 'arn:aws:lambda:ap-south-2:123456789012:function:shop-web:7', '--', 'check']);
    expect(arn.code).toBe(0);
    expect(arn.regions).toEqual(['ap-south-2']);
    expect(invokes().map((i) => [i.FunctionName, i.Qualifier])).toEqual([
      ['shop-web', '42'],
      ['arn:aws:lambda:ap-south-2:123456789012:function:shop-web', '7'],
    ]);
  });

  test('a truncated output says where the rest is; --json prints the whole answer', async () => {
    lambdaMock.on(InvokeCommand).resolves(answer({ exitCode: 0, output: '…the end\n', truncated: true, durationMs: 1 }));
    const cut = await cli(['-f', 'web', '--', 'dumpdata']);
    expect(cut.out).toBe('…the end\n');
    expect(cut.err).toMatch(/cut to its last 1 MiB; all of it is in the function's log/);
    const json = await cli(['-f', 'web', '--json', '--', 'dumpdata']);
    expect(JSON.parse(json.out)).toEqual({ warmWebCommand: { v: 1, exitCode: 0, output: '…the end\n', truncated: true, durationMs: 1 } });
  });

  test.each([
    ['a function error', response({ errorType: 'Runtime.ImportModuleError', errorMessage: 'no module named mysite' }, 'Unhandled'),
      /web:live failed \(Unhandled\): Runtime\.ImportModuleError: no module named mysite/],
    ['a timeout', response({ errorType: 'Sandbox.Timedout', errorMessage: 'Task timed out after 30.00 seconds' }, 'Unhandled'),
      /web:live timed out before the command could be stopped: Task timed out after 30\.00 seconds/],
    ['a refused command', answer({ error: 'malformed command: a flask command needs a Flask app' }), /web:live refused the command: malformed command: a flask command needs a Flask app/],
    ['an answer that is not a command answer', response({ statusCode: 400, body: 'unrecognised event' }),
      /web:live did not answer the command \(its warm-web layer predates commands/],
  ])('%s: a clear message and exit 1', async (_, out, message) => {
    lambdaMock.on(InvokeCommand).resolves(out);
    const { code, err } = await cli(['-f', 'web', '--', 'check']);
    expect(err).toMatch(message);
    expect(code).toBe(1);
  });

  test('a throttle or a missing alias: a clear message, exit 1, and one attempt only (a retry could run the command twice)', async () => {
    lambdaMock.on(InvokeCommand).rejects(new TooManyRequestsException({ message: 'Rate Exceeded.', $metadata: {} }));
    const throttled = await cli(['-f', 'web', '--', 'migrate']);
    expect(throttled.err).toMatch(/the invoke was throttled \(the function has no concurrency free/);
    expect(throttled.code).toBe(1);
    expect(invokes()).toHaveLength(1);
    lambdaMock.reset();
    lambdaMock.on(InvokeCommand).rejects(Object.assign(new Error('Function not found: arn:...:web:live'), { name: 'ResourceNotFoundException' }));
    const missing = await cli(['-f', 'web', '--', 'migrate']);
    expect(missing.err).toMatch(/not found: Function not found/);
    expect(missing.code).toBe(1);
  });
});

describe('finding the function in a stack', () => {
  test('the only WarmWebFunction of a stack, by its live alias, from a signed GetTemplate and DescribeStackResource', async () => {
    lambdaMock.on(InvokeCommand).resolves(answer({ exitCode: 0, output: 'ok\n', truncated: false, durationMs: 1 }));
    cfn.requests.length = 0;
    const { code, out } = await cli(['--stack', 'Solo', '--', 'check']);
    expect(code).toBe(0);
    expect(out).toBe('ok\n');
    expect(cfn.requests.map((r) => r.params.get('Action'))).toEqual(['GetTemplate', 'DescribeStackResource']);
    expect(cfn.requests[0].params.get('TemplateStage')).toBe('Processed');
    expect(cfn.requests[1].params.get('LogicalResourceId')).toMatch(/^SiteLiveAlias/);
    for (const { authorization } of cfn.requests) {
      expect(authorization).toMatch(new RegExp(`^AWS4-HMAC-SHA256 Credential=AKIDLOCAL/\\d{8}/${REGION}/cloudformation/aws4_request, SignedHeaders=.*host.*, Signature=[0-9a-f]{64}$`));
    }
    expect(invokes()).toEqual([expect.objectContaining({ FunctionName: `arn:aws:lambda:${REGION}:123456789012:function:solo-site`, Qualifier: 'live' })]);
  });

  test.each([
    ['Admin'], ['Shop/Admin'], [ADMIN_ALIAS], [ADMIN_FUNCTION],
  ])('--id %s picks one of several by construct path or logical id', async (id) => {
    lambdaMock.on(InvokeCommand).resolves(answer({ exitCode: 0, output: '', truncated: false, durationMs: 1 }));
    const { code } = await cli(['-s', 'Shop', '--id', id, '--', 'check']);
    expect(code).toBe(0);
    expect(invokes()[0].FunctionName).toBe(`arn:aws:lambda:${REGION}:123456789012:function:shop-admin`);
  });

  test.each([
    [['-s', 'Shop', '--', 'check'], /stack Shop has 2 functions: Shop\/Web, Shop\/Admin; pick one with --id <construct path>/, 2],
    [['-s', 'Shop', '--id', 'Nope', '--', 'check'], /no function of stack Shop matches --id Nope; its functions: Shop\/Web, Shop\/Admin/, 2],
    [['-s', 'Gone', '--', 'check'], /CloudFormation GetTemplate: ValidationError: Stack with id Gone does not exist/, 1],
  ])('%j: a clear message, no invoke', async (argv, message, status) => {
    const { code, err } = await cli(argv);
    expect(err).toMatch(message);
    expect(code).toBe(status);
    expect(invokes()).toHaveLength(0);
  });
});

describe('end to end: the bundled CLI against the local Lambda endpoint', () => {
  const bundle = path.join(__dirname, '..', '..', 'assets', 'cli', 'cdk-warm-web.js');
  const local = new LocalLambda([{
    name: 'web',
    runtime: 'python',
    python: pythonForTests(),
    codeDir: path.join(__dirname, 'apps'),
    environment: { WARM_WEB_APP: 'cliproj.wsgi:application', WARM_WEB_APP_KIND: 'wsgi', DJANGO_SETTINGS_MODULE: 'cliproj.settings' },
    timeoutMs: 60_000,
  }, {
    name: 'nodeweb',
    runtime: 'node',
    codeDir: path.join(__dirname, '..', 'runtime', 'node', 'fixtures', 'commands'),
    environment: { WARM_WEB_APP: 'handler.handler', WARM_WEB_APP_KIND: 'handler' },
  }], REGION);
  const site = synthesized(['Web'], ['web']);
  const e2eCfn = new FakeCloudFormation({});
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    await local.start();
    const endpoint = await e2eCfn.start();
    // The stack's alias, as deployed: its physical id is the local function's alias ARN.
    e2eCfn.stacks.Site = { template: site.template, physical: { [Object.keys(site.physical)[0]]: local.aliasArn('web') } };
    env = {
      PATH: process.env.PATH,
      HOME: os.tmpdir(),
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_ENDPOINT_URL_LAMBDA: local.endpoint,
      AWS_ENDPOINT_URL_CLOUDFORMATION: endpoint,
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    };
  }, 60_000);
  afterAll(async () => {
    await local.stop();
    await e2eCfn.stop();
  });

  async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    expect(fs.existsSync(bundle)).toBe(true);
    try {
      const { stdout, stderr } = await promisify(execFile)(bundle, argv, { env });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  test('a real Django management command: its output and exit status come back', async () => {
    const ok = await run(['manage', '--function', 'web', '--', 'report', 'hello', 'there']);
    expect(ok.stderr).not.toMatch(/cdk-warm-web/);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^report: hello there \(pid \d+\)\nreport: to stderr\n$/);
    const failed = await run(['manage', '--function', 'web', '--', 'report', '--exit', '5', 'failing']);
    expect(failed.code).toBe(5);
    expect(failed.stdout).toMatch(/^report: failing \(pid \d+\)\n/);
    const unknown = await run(['manage', '-f', 'web', '--', 'no_such_command']);
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toContain("Unknown command: 'no_such_command'");
    expect(local.stats('web').invocations).toBe(3);
  }, 120_000);

  test('found from its stack; Django\'s own check runs', async () => {
    const { code, stdout } = await run(['manage', '--stack', 'Site', '--', 'check']);
    expect(code).toBe(0);
    expect(stdout).toBe('System check identified no issues (0 silenced).\n');
  }, 120_000);

  test('a Node function runs a function command through the bundled Node shim', async () => {
    const { code, stdout } = await run(['manage', '-f', 'nodeweb', '--function-target', 'jobs/tasks.add', '--', '2', '40']);
    expect(code).toBe(0);
    expect(stdout).toBe('adding ["2","40"]\nto stderr\n{"sum":42}\n');
    const refused = await run(['manage', '-f', 'nodeweb', '--', 'migrate']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/nodeweb:live refused the command: malformed command: a django command needs the Python runtime/);
  }, 120_000);

  test('$LATEST is refused before anything is sent', async () => {
    const before = local.stats('web').invocations;
    const { code, stderr } = await run(['manage', '-f', 'web', '-q', '$LATEST', '--', 'migrate']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/\$LATEST is refused/);
    expect(local.stats('web').invocations).toBe(before);
  });
});
