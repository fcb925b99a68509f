import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Duration, Lazy, Size, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { WarmWebFunction, WarmWebFunctionProps, WebApp, WebCode, WebEndpoint } from '../lib';
import { snapshotTemplate } from './snapshot';

const codeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-code-'));
fs.writeFileSync(path.join(codeDir, 'app.py'), 'app = None\n');

function stackWith(props: Partial<WarmWebFunctionProps> = {}): { stack: Stack; fn: WarmWebFunction } {
  const stack = new Stack(new App(), 'TestStack');
  const fn = new WarmWebFunction(stack, 'Web', {
    app: WebApp.wsgi('app:app'),
    code: WebCode.fromDirectory(codeDir),
    ...props,
  });
  return { stack, fn };
}

function logicalIdsOf(template: Template, type: string): string[] {
  return Object.keys(template.findResources(type));
}

describe('WarmWebFunction defaults', () => {
  const { stack } = stackWith();
  const template = Template.fromStack(stack);

  test('runs the Python shim on arm64, Python 3.14, 1024 MB, 30 s', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'warm_web.handler.handler',
      Runtime: 'python3.14',
      Architectures: ['arm64'],
      MemorySize: 1024,
      Timeout: 30,
      Layers: [{ Ref: Match.stringLikeRegexp('^WarmWebPythonShimLayer') }],
      Environment: { Variables: { WARM_WEB_APP: 'app:app', WARM_WEB_APP_KIND: 'wsgi' } },
      LoggingConfig: { LogGroup: { Ref: Match.stringLikeRegexp('^WebLogGroup') } },
    });
  });

  test('publishes a version and points the live alias at it', () => {
    const [versionId] = logicalIdsOf(template, 'AWS::Lambda::Version');
    template.resourceCountIs('AWS::Lambda::Version', 1);
    template.hasResourceProperties('AWS::Lambda::Alias', {
      Name: 'live',
      FunctionVersion: { 'Fn::GetAtt': [versionId, 'Version'] },
    });
  });

  test('serves a public Function URL on the alias, buffered, and outputs it', () => {
    const [aliasId] = logicalIdsOf(template, 'AWS::Lambda::Alias');
    template.hasResource('AWS::Lambda::Url', {
      Properties: { AuthType: 'NONE', InvokeMode: 'BUFFERED', Qualifier: 'live' },
      DependsOn: [aliasId],
    });
    template.hasOutput('*', { Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('^WebLiveAliasFunctionUrl'), 'FunctionUrl'] } });
  });

  test('never routes traffic to $LATEST: every URL and permission targets the alias', () => {
    const [aliasId] = logicalIdsOf(template, 'AWS::Lambda::Alias');
    const urls = Object.values(template.findResources('AWS::Lambda::Url'));
    const permissions = Object.values(template.findResources('AWS::Lambda::Permission'));
    expect(urls.length + permissions.length).toBeGreaterThanOrEqual(2);
    for (const url of urls) {
      expect(url.Properties.Qualifier).toEqual('live');
    }
    for (const permission of permissions) {
      expect(permission.Properties.FunctionName).toEqual({ Ref: aliasId });
    }
    expect(JSON.stringify(template.toJSON())).not.toContain('$LATEST');
  });

  test('uses its own role: no managed policies, writes only to its log group', () => {
    template.hasResourceProperties('AWS::IAM::Role', { ManagedPolicyArns: Match.absent() });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: [{
          Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          Effect: 'Allow',
          Resource: { 'Fn::GetAtt': [Match.stringLikeRegexp('^WebLogGroup'), 'Arn'] },
        }],
      },
    });
  });

  test('keeps logs for a month and leaves X-Ray off', () => {
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    template.hasResourceProperties('AWS::Lambda::Function', { TracingConfig: Match.absent() });
  });

  test('matches the snapshot', () => {
    expect(snapshotTemplate(stack)).toMatchSnapshot();
  });
});

describe('WarmWebFunction options', () => {
  test('Node request listener: Node 24, the Node shim layer and handler', () => {
    const { stack } = stackWith({ app: WebApp.nodeRequestListener('server.app') });
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', {
      Handler: '/opt/warm-web/index.handler',
      Runtime: 'nodejs24.x',
      Layers: [{ Ref: Match.stringLikeRegexp('^WarmWebNodeShimLayer') }],
      Environment: { Variables: { WARM_WEB_APP: 'server.app', WARM_WEB_APP_KIND: 'listener' } },
    });
  });

  test('one shim layer per stack, shared by every function', () => {
    const { stack } = stackWith();
    new WarmWebFunction(stack, 'Other', { app: WebApp.asgi('main:app'), code: WebCode.fromDirectory(codeDir) });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Lambda::Function', 2);
    template.resourceCountIs('AWS::Lambda::LayerVersion', 1);
  });

  test('passes memory, timeout, architecture, tracing, retention, reserved concurrency and env through', () => {
    const { stack } = stackWith({
      memorySize: 2048,
      timeout: Duration.minutes(2),
      architecture: lambda.Architecture.X86_64,
      tracing: lambda.Tracing.ACTIVE,
      logRetention: logs.RetentionDays.ONE_WEEK,
      reservedConcurrentExecutions: 50,
      environment: { DJANGO_SETTINGS_MODULE: 'mysite.settings' },
      description: 'my site',
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 2048,
      Timeout: 120,
      Architectures: ['x86_64'],
      TracingConfig: { Mode: 'Active' },
      ReservedConcurrentExecutions: 50,
      Description: 'my site',
      Environment: { Variables: { DJANGO_SETTINGS_MODULE: 'mysite.settings', WARM_WEB_APP: 'app:app' } },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 7 });
  });

  test('IAM-authenticated Function URL with CORS', () => {
    const { stack } = stackWith({
      endpoint: WebEndpoint.functionUrl({ authType: lambda.FunctionUrlAuthType.AWS_IAM, cors: { allowedOrigins: ['https://example.com'] } }),
    });
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Url', {
      AuthType: 'AWS_IAM',
      Cors: { AllowOrigins: ['https://example.com'] },
    });
  });

  test('HTTP API endpoint: default route to the alias, access logs on the $default stage', () => {
    const { stack, fn } = stackWith({ endpoint: WebEndpoint.httpApi() });
    const template = Template.fromStack(stack);
    const [aliasId] = logicalIdsOf(template, 'AWS::Lambda::Alias');
    template.resourceCountIs('AWS::Lambda::Url', 0);
    template.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
      IntegrationType: 'AWS_PROXY',
      IntegrationUri: { Ref: aliasId },
      PayloadFormatVersion: '2.0',
    });
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: '$default' });
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      AccessLogSettings: { DestinationArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^WebHttpApiAccessLogs'), 'Arn'] } },
    });
    template.hasResourceProperties('AWS::Lambda::Permission', { FunctionName: { Ref: aliasId }, Principal: 'apigateway.amazonaws.com' });
    expect(fn.httpApi).toBeDefined();
    expect(fn.functionUrl).toBeUndefined();
  });

  test('warns when the timeout outlasts the HTTP API integration limit', () => {
    const { stack } = stackWith({ endpoint: WebEndpoint.httpApi(), timeout: Duration.minutes(1) });
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('timeout is 1 minute but the endpoint ends requests after 30 seconds'));
  });

  test('no endpoint: no URL, no output, no public permission', () => {
    const { stack, fn } = stackWith({ endpoint: WebEndpoint.none() });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Lambda::Url', 0);
    template.resourceCountIs('AWS::Lambda::Permission', 0);
    expect(Object.keys(template.findOutputs('*'))).toHaveLength(0);
    expect(fn.url).toBeUndefined();
  });

  test('a configuration change publishes a new version; the alias follows', () => {
    const versionOf = (memorySize: number) => logicalIdsOf(Template.fromStack(stackWith({ memorySize }).stack), 'AWS::Lambda::Version')[0];
    expect(versionOf(1024)).not.toEqual(versionOf(2048));
  });

  test('shim metrics are in the WarmWeb namespace, per function', () => {
    const { stack, fn } = stackWith();
    const metric = fn.metricColdStarts();
    expect(metric.namespace).toBe('WarmWeb');
    expect(metric.metricName).toBe('ColdStart');
    expect(metric.statistic).toBe('Sum');
    expect(stack.resolve(metric.dimensions)).toEqual({ FunctionName: stack.resolve(fn.lambdaFunction.functionName) });
    expect(fn.metricInitDuration().metricName).toBe('InitDurationMs');
  });
});

describe('WarmWebFunction validation', () => {
  test.each([
    [Duration.seconds(0), /timeout must be between 1 second and 15 minutes, got 0 seconds/],
    [Duration.minutes(16), /timeout must be between 1 second and 15 minutes, got 16 minutes/],
  ])('timeout %s', (timeout, message) => {
    expect(() => stackWith({ timeout })).toThrow(message);
  });

  test.each([64, 20000, 1536.5])('memorySize %s', (memorySize) => {
    expect(() => stackWith({ memorySize })).toThrow(new RegExp(`memorySize must be an integer between 128 and 10240 \\(MB\\), got ${memorySize}`));
  });

  test('a Python app on a Node runtime', () => {
    expect(() => stackWith({ runtime: lambda.Runtime.NODEJS_24_X }))
      .toThrow(/runtime nodejs24.x cannot run the Python app 'app:app'; use Python 3.12 or newer/);
  });

  test('a Python runtime older than 3.12', () => {
    expect(() => stackWith({ runtime: lambda.Runtime.PYTHON_3_11 })).toThrow(/runtime python3.11 cannot run the Python app/);
  });

  test('a Node app on a Python runtime', () => {
    expect(() => stackWith({ app: WebApp.nodeHandler('index.handler'), runtime: lambda.Runtime.PYTHON_3_13 }))
      .toThrow(/runtime python3.13 cannot run the Node app 'index.handler'; use Node.js 22 or newer/);
  });

  test('a Node runtime older than 22', () => {
    expect(() => stackWith({ app: WebApp.nodeHandler('index.handler'), runtime: lambda.Runtime.NODEJS_20_X }))
      .toThrow(/runtime nodejs20.x cannot run the Node app/);
  });

  test('reserved environment variables', () => {
    expect(() => stackWith({ environment: { WARM_WEB_APP: 'other:app', OK: '1' } }))
      .toThrow(/environment: WARM_WEB_APP is reserved for the cdk-warm-web runtime shim/);
  });

  test.each([0, 2.5])('reservedConcurrentExecutions %s', (reservedConcurrentExecutions) => {
    expect(() => stackWith({ reservedConcurrentExecutions }))
      .toThrow(new RegExp(`reservedConcurrentExecutions must be an integer >= 1, got ${reservedConcurrentExecutions}`));
  });

  test('tokens are not validated at synth time', () => {
    expect(() => stackWith({
      memorySize: Lazy.number({ produce: () => 20000 }),
      timeout: Duration.seconds(Lazy.number({ produce: () => 0 })),
      reservedConcurrentExecutions: Lazy.number({ produce: () => 0 }),
    })).not.toThrow();
  });
});

describe('WarmWebFunction cold-start strategy', () => {
  test('snapStart publishes versions with SnapStart on', () => {
    const { stack } = stackWith({ snapStart: true });
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', { SnapStart: { ApplyOn: 'PublishedVersions' } });
    Annotations.fromStack(stack).hasInfo('*', Match.stringLikeRegexp('SnapStart \\$[0-9.]+ \\(one version'));
  });

  test('priming paths, INIT warning threshold and async INIT reach the shim', () => {
    const { stack } = stackWith({ prime: ['/', '/health'], initWarningThreshold: Duration.seconds(5), asyncInit: true });
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: { WARM_WEB_PRIME: '["/","/health"]', WARM_WEB_INIT_WARN_MS: '5000', WARM_WEB_ASYNC_INIT: '1' } },
    });
  });

  test('basePath reaches the shim as WARM_WEB_BASE_PATH', () => {
    const { stack } = stackWith({ basePath: '/api/v1' });
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: { WARM_WEB_BASE_PATH: '/api/v1' } },
    });
  });

  test('a basePath token is not validated at synth time', () => {
    expect(() => stackWith({ basePath: Lazy.string({ produce: () => 'api/' }) })).not.toThrow();
  });

  test('without them the shim gets no options', () => {
    const { stack } = stackWith();
    const vars = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function'))[0].Properties.Environment.Variables;
    expect(Object.keys(vars).sort()).toEqual(['WARM_WEB_APP', 'WARM_WEB_APP_KIND']);
  });

  test.each([
    [{ app: WebApp.nodeRequestListener('server.app'), snapStart: true }, /snapStart: Lambda offers SnapStart for Python \(3.12\+\) and Java, not for nodejs24.x/],
    [{ snapStart: true, provisionedConcurrency: { minCapacity: 1, maxCapacity: 2 } }, /snapStart: Lambda does not support SnapStart and provisioned concurrency on the same version/],
    [{ snapStart: true, ephemeralStorageSize: Size.gibibytes(1) }, /snapStart: SnapStart needs ephemeral storage of at most 512 MiB, got 1024 MiB/],
    [{ asyncInit: true, snapStart: true }, /asyncInit: SnapStart must snapshot or keep a fully booted app/],
    [{ asyncInit: true, provisionedConcurrency: { minCapacity: 1, maxCapacity: 2 } }, /asyncInit: provisioned concurrency must snapshot or keep a fully booted app/],
    [{ app: WebApp.nodeRequestListener('server.app'), asyncInit: true }, /asyncInit: only the Python shim can finish booting in the first invoke; server.app is a Node app/],
    [{ app: WebApp.pythonHandler('app.handler'), prime: ['/'] }, /prime: app.handler is a plain handler/],
    [{ prime: ['health'] }, /prime: paths must start with '\/', got 'health'/],
    [{ basePath: 'api' }, /WarmWebFunction basePath must start with '\/', not end with '\/' and hold no '\/\/', '\?' or '#' \(for example '\/api'\), got 'api'/],
    [{ basePath: '/a//b' }, /WarmWebFunction basePath must start .*, got '\/a\/\/b'/],
    [{ basePath: '/api/' }, /WarmWebFunction basePath .*, got '\/api\/'/],
    [{ basePath: '/' }, /WarmWebFunction basePath .*, got '\/'/],
    [{ basePath: '' }, /WarmWebFunction basePath .*, got ''/],
    [{ basePath: '/api?x=1' }, /WarmWebFunction basePath .*, got '\/api\?x=1'/],
    [{ basePath: '/api#top' }, /WarmWebFunction basePath .*, got '\/api#top'/],
    [{ initWarningThreshold: Duration.seconds(12) }, /initWarningThreshold must be between 100 milliseconds and 10 seconds, got 12 seconds/],
  ])('rejects %#', (props, message) => {
    expect(() => stackWith(props as Partial<WarmWebFunctionProps>)).toThrow(message);
  });
});

describe('WarmWebFunction errors name the construct; tokens are not numbers', () => {
  test('a validation error starts with the function\'s path', () => {
    expect(() => stackWith({ memorySize: 64 })).toThrow(/^TestStack\/Web: memorySize must be an integer between 128 and 10240 \(MB\), got 64$/);
  });

  test('tokenised numbers pass validation, and no template value shows one as a number', () => {
    const token = Lazy.number({ produce: () => 2048 });
    const { stack } = stackWith({ memorySize: token, reservedConcurrentExecutions: Lazy.number({ produce: () => 5 }), warming: { concurrency: 2 } });
    const json = JSON.stringify(Template.fromStack(stack).toJSON());
    expect(json).not.toMatch(/e\+/);
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', { MemorySize: 2048, ReservedConcurrentExecutions: 5 });
  });

  test('warm alarm helpers take their options, are idempotent, and refuse other options', () => {
    const { fn } = stackWith({ warming: { concurrency: 2 } });
    const alarm = fn.addWarmThrottleAlarm({ threshold: 3 });
    expect(fn.addWarmThrottleAlarm({ threshold: 3 })).toBe(alarm);
    expect(() => fn.addWarmThrottleAlarm({ threshold: 3, datapointsToAlarm: 3 }))
      .toThrow(/addWarmThrottleAlarm: TestStack\/Web already has this alarm, with datapointsToAlarm 2; got 3/);
    expect(() => fn.addWarmCoverageAlarm({ threshold: Lazy.number({ produce: () => 0.5 }) })).not.toThrow();
    expect(() => fn.addWarmThrottleAlarm({ threshold: 3, evaluationPeriods: 4 }))
      .toThrow(/addWarmThrottleAlarm: TestStack\/Web already has this alarm, with evaluationPeriods 3; got 4/);
    expect(() => fn.addWarmThrottleAlarm({ threshold: 3, evaluationPeriods: 1 }))
      .toThrow(/^TestStack\/Web: addWarmThrottleAlarm: datapointsToAlarm must be an integer from 1 to evaluationPeriods \(1\), got 2/);
  });
});
