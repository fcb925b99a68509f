import * as http from 'http';
import { AddressInfo } from 'net';
import { InvokeCommand, InvokeCommandInput, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { handler, INIT_SLACK_MS, ANSWER_RESERVE_MS } from '../../handlers/pre-traffic';

const lambdaMock = mockClient(LambdaClient);
const VERSION_ARN = 'arn:aws:lambda:us-east-1:123456789012:function:web:7';
const MIGRATE = { warmWebCommand: { v: 1, kind: 'django', args: ['migrate', '--noinput'] } };
const CHECK = { warmWebCommand: { v: 1, kind: 'function', target: 'tasks:check', args: [] } };

interface Answer { method?: string; Status: string; Reason: string; PhysicalResourceId: string; LogicalResourceId: string }

let server: http.Server;
let url: string;
let responses: Answer[];
let logs: jest.SpyInstance;
let errorLines: jest.SpyInstance;
let stdout: jest.SpyInstance;
let warnings: jest.SpyInstance;

beforeEach(async () => {
  lambdaMock.reset();
  responses = [];
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      responses.push({ method: req.method, ...JSON.parse(body) });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/response`;
  logs = jest.spyOn(console, 'log').mockImplementation(() => undefined);
  errorLines = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  warnings = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  // The warm-up's metric lines.
  stdout = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
});
afterEach(async () => {
  logs.mockRestore();
  errorLines.mockRestore();
  warnings.mockRestore();
  stdout.mockRestore();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A Lambda context with `ms` left. */
const remaining = (ms: number) => {
  const end = Date.now() + ms;
  return { getRemainingTimeInMillis: () => end - Date.now() };
};
const FIFTEEN_MINUTES = remaining(15 * 60_000);

function event(RequestType: string, props: Record<string, unknown>, old?: Record<string, unknown>) {
  return {
    RequestType,
    ResponseURL: url,
    StackId: 'stack',
    RequestId: 'req',
    LogicalResourceId: 'DeploymentStep',
    ...(RequestType === 'Create' ? {} : { PhysicalResourceId: 'warm-web-pre-traffic-DeploymentStep' }),
    // CloudFormation hands numbers over as strings.
    ResourceProperties: { ServiceToken: 'arn', FunctionTimeoutMs: '30000', FunctionArn: VERSION_ARN, ...props },
    ...(old ? { OldResourceProperties: { ServiceToken: 'arn', FunctionTimeoutMs: '30000', ...old } } : {}),
  };
}

/** The command answer of docs/RUNTIME_CONTRACT.md "Command event". */
function commandAnswer(result: Record<string, unknown>) {
  return { StatusCode: 200, Payload: Buffer.from(JSON.stringify({ warmWebCommand: { v: 1, ...result } })) as never };
}

function payloadOf(input: InvokeCommandInput): any {
  return JSON.parse(Buffer.from(input.Payload as Uint8Array).toString('utf-8'));
}

/** Invokes that are not the warm-up's DryRun connection openers, in the order they were sent. */
function invokes(): InvokeCommandInput[] {
  return lambdaMock.commandCalls(InvokeCommand).map((c) => c.args[0].input).filter((i) => i.InvocationType !== 'DryRun');
}

describe('migrations', () => {
  test('run in order on the new version, synchronously, and the step answers SUCCESS', async () => {
    lambdaMock.on(InvokeCommand).resolves(commandAnswer({ exitCode: 0, output: 'Applying polls.0002... OK', truncated: false, durationMs: 812.4 }));
    await handler(event('Create', { Commands: [MIGRATE, CHECK] }), FIFTEEN_MINUTES);

    const sent = invokes();
    expect(sent.map((i) => [i.FunctionName, i.InvocationType])).toEqual([[VERSION_ARN, 'RequestResponse'], [VERSION_ARN, 'RequestResponse']]);
    expect(sent.map(payloadOf)).toEqual([MIGRATE, CHECK]);
    expect(responses).toHaveLength(1);
    expect(responses[0]).toMatchObject({
      method: 'PUT',
      Status: 'SUCCESS',
      LogicalResourceId: 'DeploymentStep',
      PhysicalResourceId: 'warm-web-pre-traffic-DeploymentStep',
    });
    expect(responses[0].Reason).toBe("version 7: 'django migrate --noinput' ran (exit code 0, 812 ms); 'tasks:check' ran (exit code 0, 812 ms)");
    // The command's output is in the step's log.
    expect(logs).toHaveBeenCalledWith('Applying polls.0002... OK');
  });

  test('a non-zero exit code fails the step with the end of the output, and no later command runs', async () => {
    const output = `${'x'.repeat(5000)}\ndjango.db.utils.ProgrammingError: relation "polls_choice" does not exist`;
    lambdaMock.on(InvokeCommand).resolves(commandAnswer({ exitCode: 1, output, truncated: false, durationMs: 40 }));
    await handler(event('Create', { Commands: [MIGRATE, CHECK] }), FIFTEEN_MINUTES);

    expect(invokes()).toHaveLength(1);
    expect(responses).toHaveLength(1);
    expect(responses[0].Status).toBe('FAILED');
    expect(responses[0].Reason).toMatch(/^'django migrate --noinput' failed with exit code 1: \.\.\.x+\ndjango\.db\.utils\.ProgrammingError: relation "polls_choice" does not exist$/);
    expect(responses[0].Reason.length).toBeLessThan(1600);
    // The whole output is in the log.
    expect(logs).toHaveBeenCalledWith(output);
  });

  test('a command the function stopped at its timeout (exit code 124) fails the step with the shim\'s message', async () => {
    const output = 'Applying big.0001...\nwarm-web: the command did not finish within the function timeout (30 s)';
    lambdaMock.on(InvokeCommand).resolves(commandAnswer({ exitCode: 124, output, truncated: false, durationMs: 29000 }));
    await handler(event('Update', { Commands: [MIGRATE] }, { FunctionArn: VERSION_ARN.replace(/7$/, '6') }), FIFTEEN_MINUTES);
    expect(responses[0]).toMatchObject({ Status: 'FAILED' });
    expect(responses[0].Reason).toMatch(/failed with exit code 124: Applying big\.0001\.\.\.\nwarm-web: the command did not finish within the function timeout/);
  });

  test('a refused command (an error answer) fails the step with the function\'s error', async () => {
    lambdaMock.on(InvokeCommand).resolves(commandAnswer({ error: 'malformed command: django needs DJANGO_SETTINGS_MODULE' }));
    await handler(event('Create', { Commands: [MIGRATE] }), FIFTEEN_MINUTES);
    expect(responses[0]).toMatchObject({
      Status: 'FAILED',
      Reason: "'django migrate --noinput' refused by the function: malformed command: django needs DJANGO_SETTINGS_MODULE",
    });
  });

  test('a function error (the version crashed) fails the step', async () => {
    lambdaMock.on(InvokeCommand).resolves({
      StatusCode: 200,
      FunctionError: 'Unhandled',
      Payload: Buffer.from(JSON.stringify({ errorType: 'Runtime.ImportModuleError', errorMessage: "No module named 'mysite'" })) as never,
    });
    await handler(event('Create', { Commands: [MIGRATE] }), FIFTEEN_MINUTES);
    expect(responses[0].Status).toBe('FAILED');
    expect(responses[0].Reason).toMatch(/^'django migrate --noinput' failed: the function raised \(Unhandled\): .*No module named 'mysite'/);
  });

  test('an invoke given up (timed out) or refused by Lambda fails the step', async () => {
    lambdaMock.on(InvokeCommand).rejectsOnce(Object.assign(new Error('The operation was aborted'), { name: 'AbortError' }))
      .rejectsOnce(Object.assign(new Error('not authorized to perform: lambda:InvokeFunction'), { name: 'AccessDeniedException' }));
    await handler(event('Create', { Commands: [MIGRATE] }), FIFTEEN_MINUTES);
    await handler(event('Create', { Commands: [MIGRATE] }), FIFTEEN_MINUTES);
    expect(responses.map((r) => r.Status)).toEqual(['FAILED', 'FAILED']);
    expect(responses[0].Reason).toBe("'django migrate --noinput' failed: no answer within 45 s (the function's timeout and a cold start)");
    expect(responses[1].Reason).toBe("'django migrate --noinput' failed: AccessDeniedException: not authorized to perform: lambda:InvokeFunction");
  });

  test('an answer that is not a command answer (a shim without commands) fails the step', async () => {
    lambdaMock.on(InvokeCommand).resolves({ StatusCode: 200, Payload: Buffer.from(JSON.stringify({ statusCode: 200, body: 'hello' })) as never });
    await handler(event('Create', { Commands: [MIGRATE] }), FIFTEEN_MINUTES);
    expect(responses[0].Status).toBe('FAILED');
    expect(responses[0].Reason).toMatch(/not a cdk-warm-web command answer .*"statusCode":200/);
  });

  test('a command is not started without time for the whole of it: the step fails before its own timeout', async () => {
    // The first command takes 4 s; after it, 1 s short of what the second (30 s + the cold-start slack) may take.
    lambdaMock.on(InvokeCommand).callsFake(async () => {
      await new Promise((resolve) => setTimeout(resolve, 4_000));
      return commandAnswer({ exitCode: 0, output: '', truncated: false, durationMs: 4000 });
    });
    const left = 30_000 + INIT_SLACK_MS + ANSWER_RESERVE_MS + 3_000;
    await handler(event('Create', { Commands: [MIGRATE, CHECK] }), remaining(left));
    expect(invokes().map(payloadOf)).toEqual([MIGRATE]);
    expect(responses).toHaveLength(1);
    expect(responses[0].Status).toBe('FAILED');
    expect(responses[0].Reason).toMatch(/^'tasks:check' not run: \d+ s left of the pre-traffic step, and the command may take 45 s/);
  });

  test('with no time for a command, none is started', async () => {
    await handler(event('Create', { Commands: [MIGRATE] }), remaining(30_000));
    expect(lambdaMock.commandCalls(InvokeCommand)).toHaveLength(0);
    expect(responses[0]).toMatchObject({ Status: 'FAILED' });
    expect(responses[0].Reason).toMatch(/^'django migrate --noinput' not run: 25 s left/);
  });
});

describe('updates and deletes', () => {
  test('a new version (Update to a higher version) runs the commands', async () => {
    lambdaMock.on(InvokeCommand).resolves(commandAnswer({ exitCode: 0, output: '', truncated: false, durationMs: 1 }));
    await handler(event('Update', { Commands: [MIGRATE] }, { FunctionArn: VERSION_ARN.replace(/7$/, '6') }), FIFTEEN_MINUTES);
    expect(invokes()).toHaveLength(1);
    expect(responses[0]).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: 'warm-web-pre-traffic-DeploymentStep' });
  });

  test('a stack rollback (Update to a lower version) runs nothing and succeeds', async () => {
    await handler(event('Update', { Commands: [MIGRATE], FunctionArn: VERSION_ARN.replace(/7$/, '6') }, { FunctionArn: VERSION_ARN }), FIFTEEN_MINUTES);
    expect(lambdaMock.commandCalls(InvokeCommand)).toHaveLength(0);
    expect(responses[0]).toMatchObject({ Status: 'SUCCESS', Reason: 'rollback to version 6: nothing run' });
  });

  test('Delete runs nothing and succeeds', async () => {
    await handler(event('Delete', { Commands: [MIGRATE] }), FIFTEEN_MINUTES);
    expect(lambdaMock.commandCalls(InvokeCommand)).toHaveLength(0);
    expect(responses[0]).toMatchObject({ Status: 'SUCCESS', Reason: 'nothing to delete' });
  });

  test('an alias or $LATEST instead of a version fails the step, running nothing', async () => {
    await handler(event('Create', { Commands: [MIGRATE], FunctionArn: VERSION_ARN.replace(/7$/, 'live') }), FIFTEEN_MINUTES);
    await handler(event('Create', { Commands: [MIGRATE], FunctionArn: VERSION_ARN.replace(/7$/, '$LATEST') }), FIFTEEN_MINUTES);
    expect(lambdaMock.commandCalls(InvokeCommand)).toHaveLength(0);
    expect(responses.map((r) => r.Status)).toEqual(['FAILED', 'FAILED']);
    expect(responses[0].Reason).toBe('the pre-traffic step failed: FunctionArn must be the ARN of a published version, '
      + 'got "arn:aws:lambda:us-east-1:123456789012:function:web:live"');
  });

  test('an event that is not CloudFormation\'s is refused', async () => {
    await expect(handler({ warmWebCommand: MIGRATE.warmWebCommand }, FIFTEEN_MINUTES)).rejects.toThrow(/expected a CloudFormation custom resource event/);
  });
});

describe('warm-up', () => {
  function onInvoke(ping: (k: number) => unknown) {
    let k = 0;
    lambdaMock.on(InvokeCommand).callsFake(async (input: InvokeCommandInput) => {
      if (input.InvocationType === 'DryRun') return { StatusCode: 204 };
      const payload = payloadOf(input);
      if (payload.warmWebCommand) return commandAnswer({ exitCode: 0, output: 'OK', truncated: false, durationMs: 5 });
      return ping(k++);
    });
  }

  test('after the migrations, the new version\'s environments are warmed (the largest concurrency) and the step succeeds', async () => {
    onInvoke((k) => ({ StatusCode: 200, Payload: Buffer.from(JSON.stringify({ warmWeb: { v: 1, environmentId: `env-${k}`, coldStart: true, heldMs: 20 } })) }));
    await handler(event('Create', { Commands: [MIGRATE], Warm: { concurrency: ['2', '3'], holdMs: '20' } }), FIFTEEN_MINUTES);

    const sent = invokes();
    expect(payloadOf(sent[0])).toEqual(MIGRATE);
    const pings = sent.slice(1);
    expect(pings).toHaveLength(3);
    expect(pings.every((p) => p.FunctionName === VERSION_ARN && payloadOf(p).warmWeb.expected === 3)).toBe(true);
    expect(responses[0]).toMatchObject({ Status: 'SUCCESS', Reason: "version 7: 'django migrate --noinput' ran (exit code 0, 5 ms); warmed 3/3 environments" });
  });

  test('a version no environment of which answers a ping cannot serve: the step fails', async () => {
    onInvoke(() => ({ StatusCode: 200, FunctionError: 'Unhandled', Payload: Buffer.from('{"errorType":"Runtime.ExitError"}') }));
    await handler(event('Create', { Warm: { concurrency: '2', holdMs: '20' } }), FIFTEEN_MINUTES);
    expect(responses[0].Status).toBe('FAILED');
    expect(responses[0].Reason).toMatch(/^warm-up: no environment of the new version answered a warm ping \(2 FunctionError\): it cannot serve$/);
  });

  test('a warm-up throttled by the account\'s concurrency does not fail the deploy', async () => {
    onInvoke(() => {
      throw Object.assign(new Error('Rate Exceeded.'), { name: 'TooManyRequestsException', $metadata: { httpStatusCode: 429 } });
    });
    await handler(event('Create', { Warm: { concurrency: '2', holdMs: '20' } }), FIFTEEN_MINUTES);
    expect(responses[0]).toMatchObject({ Status: 'SUCCESS', Reason: 'version 7: warmed 0/2 environments (2 TooManyRequestsException)' });
  });
});
