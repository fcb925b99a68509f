import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks } from 'cdk-nag';
import {
  TrafficShifting, WarmSchedule, WarmWebFunction, WarmWebFunctionProps, WarmWebStack, WebApp, WebCode, WebCommand,
} from '../lib';

const codeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-deploy-code-'));
fs.writeFileSync(path.join(codeDir, 'app.py'), 'app = None\n');

const DJANGO = { DJANGO_SETTINGS_MODULE: 'mysite.settings' };
const MIGRATE = WebCommand.django('migrate', '--noinput');

function stackWith(props: Partial<WarmWebFunctionProps> = {}): { stack: Stack; fn: WarmWebFunction; template: Template } {
  const stack = new Stack(new App(), 'TestStack');
  const fn = new WarmWebFunction(stack, 'Web', {
    app: WebApp.wsgi('mysite.wsgi:application'),
    code: WebCode.fromDirectory(codeDir),
    environment: DJANGO,
    ...props,
  });
  return { stack, fn, template: Template.fromStack(stack) };
}

function idOf(template: Template, type: string, props?: unknown): string {
  const found = Object.keys(template.findResources(type, props === undefined ? undefined : { Properties: props }));
  expect(found).toHaveLength(1);
  return found[0];
}

describe('migrations before traffic', () => {
  const { fn, template } = stackWith({ deployment: { migrations: [MIGRATE, WebCommand.function('tasks:check')] } });
  const versionId = idOf(template, 'AWS::Lambda::Version');
  const stepId = idOf(template, 'Custom::WarmWebPreTraffic');

  test('a pre-traffic step runs each command, in order, on the version just published', () => {
    template.hasResourceProperties('Custom::WarmWebPreTraffic', {
      FunctionArn: { Ref: versionId },
      Commands: [
        { warmWebCommand: { v: 1, kind: 'django', args: ['migrate', '--noinput'] } },
        { warmWebCommand: { v: 1, kind: 'function', target: 'tasks:check', args: [] } },
      ],
      FunctionTimeoutMs: 30000,
      ServiceTimeout: '160',
    });
    expect(template.findResources('Custom::WarmWebPreTraffic')[stepId].Properties.Warm).toBeUndefined();
  });

  test('the live alias moves only after the step, and all at once: no CodeDeploy', () => {
    const alias = template.findResources('AWS::Lambda::Alias')[idOf(template, 'AWS::Lambda::Alias')];
    expect(alias.DependsOn).toContain(stepId);
    expect(alias.UpdatePolicy).toBeUndefined();
    template.resourceCountIs('AWS::CodeDeploy::DeploymentGroup', 0);
    expect(fn.deployment!.deploymentGroup).toBeUndefined();
  });

  test('the step\'s function has the time of both commands at the function\'s timeout, and no retry', () => {
    const stepFn = idOf(template, 'AWS::Lambda::Function', { Description: Match.stringLikeRegexp('^cdk-warm-web: runs the migrations') });
    // 2 x (30 s + 15 s for a cold start) + 10 s to answer.
    template.hasResourceProperties('AWS::Lambda::Function', { Description: Match.stringLikeRegexp('^cdk-warm-web: runs the migrations'), Timeout: 100, Runtime: 'nodejs24.x' });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { FunctionName: { Ref: stepFn }, MaximumRetryAttempts: 0 });
    template.hasResourceProperties('Custom::WarmWebPreTraffic', { ServiceToken: { 'Fn::GetAtt': [stepFn, 'Arn'] } });
  });

  test('the step may invoke the version being deployed and nothing else, before it runs', () => {
    const policyId = idOf(template, 'AWS::IAM::Policy', { PolicyName: Match.stringLikeRegexp('InvokeNewVersion') });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyName: Match.stringLikeRegexp('InvokeNewVersion'),
      PolicyDocument: { Statement: [{ Action: 'lambda:InvokeFunction', Effect: 'Allow', Resource: { Ref: versionId } }] },
    });
    expect(template.findResources('Custom::WarmWebPreTraffic')[stepId].DependsOn).toContain(policyId);
  });
});

describe('traffic shifting', () => {
  test('canary 10 % for 5 minutes is CodeDeploy\'s predefined configuration, with rollback on failure and on alarm', () => {
    const { fn, template } = stackWith({ deployment: { migrations: [MIGRATE], trafficShifting: TrafficShifting.canary(10, Duration.minutes(5)) } });
    const groupId = idOf(template, 'AWS::CodeDeploy::DeploymentGroup');
    const alarmId = idOf(template, 'AWS::CloudWatch::Alarm');
    template.hasResourceProperties('AWS::CodeDeploy::DeploymentGroup', {
      DeploymentConfigName: 'CodeDeployDefault.LambdaCanary10Percent5Minutes',
      DeploymentStyle: { DeploymentType: 'BLUE_GREEN', DeploymentOption: 'WITH_TRAFFIC_CONTROL' },
      AutoRollbackConfiguration: { Enabled: true, Events: ['DEPLOYMENT_FAILURE', 'DEPLOYMENT_STOP_ON_REQUEST', 'DEPLOYMENT_STOP_ON_ALARM'] },
      AlarmConfiguration: { Enabled: true, Alarms: [{ Name: { Ref: alarmId } }] },
    });
    template.resourceCountIs('AWS::CodeDeploy::DeploymentConfig', 0);
    const alias = template.findResources('AWS::Lambda::Alias')[idOf(template, 'AWS::Lambda::Alias')];
    expect(alias.UpdatePolicy.CodeDeployLambdaAliasUpdate).toMatchObject({ DeploymentGroupName: { Ref: groupId } });
    // No CodeDeploy hook: the step ran before the alias update began.
    expect(alias.UpdatePolicy.CodeDeployLambdaAliasUpdate.BeforeAllowTrafficHook).toBeUndefined();
    expect(alias.DependsOn).toContain(idOf(template, 'Custom::WarmWebPreTraffic'));
    expect(fn.deployment!.newVersionErrorsAlarm).toBeDefined();
  });

  test('the new version\'s error alarm counts errors of that version through the alias only', () => {
    const { template } = stackWith({ deployment: { trafficShifting: TrafficShifting.linear(10, Duration.minutes(1)) } });
    const versionId = idOf(template, 'AWS::Lambda::Version');
    const fnId = idOf(template, 'AWS::Lambda::Function', { Environment: { Variables: { WARM_WEB_APP: Match.anyValue() } } });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Statistic: 'Sum',
      Period: 60,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      Dimensions: Match.arrayWith([
        { Name: 'ExecutedVersion', Value: { 'Fn::GetAtt': [versionId, 'Version'] } },
        { Name: 'FunctionName', Value: { Ref: fnId } },
        { Name: 'Resource', Value: { 'Fn::Join': ['', [{ Ref: fnId }, ':live']] } },
      ]),
    });
    template.hasResourceProperties('AWS::CodeDeploy::DeploymentGroup', { DeploymentConfigName: 'CodeDeployDefault.LambdaLinear10PercentEvery1Minute' });
    // Nothing to run or warm before traffic: no step.
    template.resourceCountIs('Custom::WarmWebPreTraffic', 0);
  });

  test('shifts without a predefined configuration get one of their own', () => {
    const canary = stackWith({ deployment: { trafficShifting: TrafficShifting.canary(25, Duration.minutes(20)) } }).template;
    canary.hasResourceProperties('AWS::CodeDeploy::DeploymentConfig', {
      ComputePlatform: 'Lambda',
      TrafficRoutingConfig: { Type: 'TimeBasedCanary', TimeBasedCanary: { CanaryPercentage: 25, CanaryInterval: 20 } },
    });
    const configId = idOf(canary, 'AWS::CodeDeploy::DeploymentConfig');
    canary.hasResourceProperties('AWS::CodeDeploy::DeploymentGroup', { DeploymentConfigName: { Ref: configId } });
    const linear = stackWith({ deployment: { trafficShifting: TrafficShifting.linear(20, Duration.hours(1)) } }).template;
    linear.hasResourceProperties('AWS::CodeDeploy::DeploymentConfig', {
      TrafficRoutingConfig: { Type: 'TimeBasedLinear', TimeBasedLinear: { LinearPercentage: 20, LinearInterval: 60 } },
    });
  });

  test('rollbackAlarms are watched next to the new version\'s error alarm', () => {
    const stack = new Stack(new App(), 'Alarms');
    const own = new cloudwatch.Alarm(stack, 'Own', { metric: new cloudwatch.Metric({ namespace: 'Site', metricName: 'Checkout5xx' }), threshold: 1, evaluationPeriods: 1 });
    new WarmWebFunction(stack, 'Web', {
      app: WebApp.wsgi('mysite.wsgi:application'),
      code: WebCode.fromDirectory(codeDir),
      deployment: { trafficShifting: TrafficShifting.canary(10, Duration.minutes(10)), rollbackAlarms: [own] },
    });
    const template = Template.fromStack(stack);
    const ownId = Object.keys(template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'Checkout5xx' } }))[0];
    const newVersionId = Object.keys(template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'Errors' } }))[0];
    template.hasResourceProperties('AWS::CodeDeploy::DeploymentGroup', {
      DeploymentConfigName: 'CodeDeployDefault.LambdaCanary10Percent10Minutes',
      AlarmConfiguration: { Alarms: [{ Name: { Ref: newVersionId } }, { Name: { Ref: ownId } }] },
    });
  });

  test('in a WarmWebStack the shift also rolls back on the function\'s error-rate and duration alarms', () => {
    const stack = new WarmWebStack(new App(), 'Site', {
      web: {
        app: WebApp.wsgi('mysite.wsgi:application'),
        code: WebCode.fromDirectory(codeDir),
        environment: DJANGO,
        deployment: { migrations: [MIGRATE], trafficShifting: TrafficShifting.canary(10, Duration.minutes(5)) },
      },
    });
    const template = Template.fromStack(stack);
    const alarm = (pattern: string) => idOf(template, 'AWS::CloudWatch::Alarm', { AlarmDescription: Match.stringLikeRegexp(pattern) });
    template.hasResourceProperties('AWS::CodeDeploy::DeploymentGroup', {
      AlarmConfiguration: {
        Alarms: [
          { Name: { Ref: alarm('^The version of Site/Web/LiveAlias being deployed') } },
          { Name: { Ref: alarm('^More than 1 % of invokes') } },
          { Name: { Ref: alarm('^p99 duration') } },
        ],
      },
    });
  });
});

describe('with warming', () => {
  test('the step warms the new version before traffic, and the warmer does not pre-warm it after', () => {
    const { template } = stackWith({
      deployment: { migrations: [MIGRATE] },
      warming: {
        schedules: [WarmSchedule.every(Duration.minutes(5), 2), WarmSchedule.every(Duration.minutes(1), 6)],
        holdTime: Duration.millis(400),
      },
    });
    template.hasResourceProperties('Custom::WarmWebPreTraffic', { Warm: { concurrency: 6, holdMs: 400 } });
    template.resourceCountIs('Custom::WarmWebPrewarm', 0);
    // 30 s + 15 s for the command, 115 s for the warm-up, 10 s to answer.
    template.hasResourceProperties('AWS::Lambda::Function', { Description: Match.stringLikeRegexp('^cdk-warm-web: runs the migrations'), Timeout: 170 });
  });

  test('warming with prewarmOnDeploy false warms no new version, in the step or the warmer', () => {
    const { template } = stackWith({ deployment: { migrations: [MIGRATE] }, warming: { concurrency: 2, prewarmOnDeploy: false } });
    expect(Object.values(template.findResources('Custom::WarmWebPreTraffic'))[0].Properties.Warm).toBeUndefined();
    template.resourceCountIs('Custom::WarmWebPrewarm', 0);
  });

  test('without deployment the warmer pre-warms each version as before', () => {
    const { template } = stackWith({ warming: { concurrency: 2 } });
    template.resourceCountIs('Custom::WarmWebPrewarm', 1);
    template.resourceCountIs('Custom::WarmWebPreTraffic', 0);
  });
});

describe('with provisioned concurrency and SnapStart', () => {
  test('provisioned concurrency stays on the alias that CodeDeploy shifts', () => {
    const { template } = stackWith({
      provisionedConcurrency: { minCapacity: 2, maxCapacity: 4 },
      deployment: { migrations: [MIGRATE], trafficShifting: TrafficShifting.canary(10, Duration.minutes(5)) },
    });
    const alias = template.findResources('AWS::Lambda::Alias')[idOf(template, 'AWS::Lambda::Alias')];
    expect(alias.Properties.ProvisionedConcurrencyConfig).toEqual({ ProvisionedConcurrentExecutions: 2 });
    expect(alias.UpdatePolicy.CodeDeployLambdaAliasUpdate).toBeDefined();
  });

  test('a SnapStart version is migrated like any other: the step gets the published version', () => {
    const { template } = stackWith({ snapStart: true, deployment: { migrations: [MIGRATE] } });
    template.hasResourceProperties('AWS::Lambda::Function', { SnapStart: { ApplyOn: 'PublishedVersions' } });
    template.hasResourceProperties('Custom::WarmWebPreTraffic', { FunctionArn: { Ref: idOf(template, 'AWS::Lambda::Version') } });
  });
});

describe('validation', () => {
  test.each([
    ['a Node app', { app: WebApp.nodeHandler('index.handler'), environment: DJANGO }, /WarmWebFunction deployment\.migrations\[0\]: 'django migrate --noinput' needs a Python Django app \(DJANGO_SETTINGS_MODULE in environment\); the app is handler 'index\.handler'$/],
    ['a Python app without DJANGO_SETTINGS_MODULE', { environment: {} }, /deployment\.migrations\[0\]: 'django migrate --noinput' needs a Python Django app .*; the app is wsgi 'mysite\.wsgi:application' without it/],
  ])('a Django command needs a Django app: %s', (_name, props, message) => {
    expect(() => stackWith({ ...props, deployment: { migrations: [MIGRATE] } })).toThrow(message);
  });

  test('a Flask command needs a Python app; a function command fits any app', () => {
    expect(() => stackWith({ app: WebApp.nodeHandler('index.handler'), deployment: { migrations: [WebCommand.flask('db', 'upgrade')] } }))
      .toThrow(/deployment\.migrations\[0\]: 'flask db upgrade' needs a Python Flask app; the app is handler 'index\.handler'/);
    expect(() => stackWith({ app: WebApp.nodeHandler('index.handler'), deployment: { migrations: [WebCommand.function('jobs/migrate.run')] } })).not.toThrow();
  });

  test('an empty migrations list, or a deployment that changes nothing, is refused', () => {
    expect(() => stackWith({ deployment: { migrations: [] } })).toThrow(/deployment\.migrations must not be empty/);
    expect(() => stackWith({ deployment: {} })).toThrow(/WarmWebFunction deployment: give migrations or a canary or linear trafficShifting/);
    expect(() => stackWith({ deployment: { trafficShifting: TrafficShifting.allAtOnce() } })).toThrow(/give migrations or a canary or linear/);
  });

  test('rollbackAlarms need a gradual shift', () => {
    const stack = new Stack();
    const alarm = new cloudwatch.Alarm(stack, 'A', { metric: new cloudwatch.Metric({ namespace: 'N', metricName: 'M' }), threshold: 1, evaluationPeriods: 1 });
    expect(() => stackWith({ deployment: { migrations: [MIGRATE], rollbackAlarms: [alarm] } }))
      .toThrow(/deployment\.rollbackAlarms need trafficShifting canary or linear, got TrafficShifting\.allAtOnce\(\)/);
    const { fn } = stackWith({ deployment: { migrations: [MIGRATE] } });
    expect(() => fn.deployment!.addRollbackAlarm(alarm)).toThrow(/TestStack\/Web\/Deployment: rollback alarms need trafficShifting canary or linear/);
  });

  test('CodeDeploy\'s 10 alarms, the new version\'s included', () => {
    const make = (count: number) => {
      const stack = new Stack(new App(), 'Alarms');
      const alarms = Array.from({ length: count }, (_, i) =>
        new cloudwatch.Alarm(stack, `A${i}`, { metric: new cloudwatch.Metric({ namespace: 'N', metricName: 'M' }), threshold: 1, evaluationPeriods: 1 }));
      new WarmWebFunction(stack, 'Web', {
        app: WebApp.wsgi('mysite.wsgi:application'),
        code: WebCode.fromDirectory(codeDir),
        deployment: { trafficShifting: TrafficShifting.canary(10, Duration.minutes(5)), rollbackAlarms: alarms },
      });
    };
    expect(() => make(9)).not.toThrow();
    expect(() => make(10))
      .toThrow(/Alarms\/Web\/Deployment: CodeDeploy watches at most 10 alarms per deployment, the new version's error alarm included; Alarms\/A9 is one too many/);
  });

  test.each([0, 100, 12.5, -3])('canary and linear percent %p is refused', (percent) => {
    expect(() => TrafficShifting.canary(percent, Duration.minutes(5))).toThrow(`TrafficShifting.canary: percent must be an integer from 1 to 99, got ${percent}`);
    expect(() => TrafficShifting.linear(percent, Duration.minutes(5))).toThrow(`TrafficShifting.linear: percent must be an integer from 1 to 99, got ${percent}`);
  });

  test.each([
    [Duration.seconds(30), '30 seconds'],
    [Duration.seconds(90), '1 minute 30 seconds'],
    [Duration.minutes(2881), '2 days 1 minute'],
  ])('interval %p is refused', (interval, shown) => {
    expect(() => TrafficShifting.canary(10, interval)).toThrow(`TrafficShifting.canary: interval must be whole minutes from 1 to 2880 (2 days), got ${shown}`);
    expect(() => TrafficShifting.linear(10, interval)).toThrow(/TrafficShifting\.linear: interval must be whole minutes from 1 to 2880/);
  });

  test('the bounds themselves are accepted', () => {
    expect(() => TrafficShifting.canary(1, Duration.minutes(1))).not.toThrow();
    expect(() => TrafficShifting.linear(99, Duration.days(2))).not.toThrow();
  });

  test('the commands must fit the 15 minutes a pre-traffic step can run', () => {
    expect(() => stackWith({ timeout: Duration.minutes(14), deployment: { migrations: [MIGRATE] } })).not.toThrow();
    expect(() => stackWith({ timeout: Duration.minutes(15), deployment: { migrations: [MIGRATE] } }))
      .toThrow(/WarmWebFunction deployment\.migrations: 1 command\(s\) of up to 15 minutes each \(the function's timeout, plus 15 seconds for a cold start\) need 15 minutes 25 seconds, more than the 15 minutes the pre-traffic step can run/);
    expect(() => stackWith({ timeout: Duration.minutes(5), deployment: { migrations: [MIGRATE, MIGRATE, MIGRATE] } }))
      .toThrow(/3 command\(s\) of up to 5 minutes each .* need 15 minutes 55 seconds/);
    expect(() => stackWith({ timeout: Duration.minutes(13), warming: { concurrency: 2 }, deployment: { migrations: [MIGRATE] } }))
      .toThrow(/1 command\(s\) of up to 13 minutes each .* and the warm-up need 15 minutes 20 seconds/);
  });
});

describe('gates', () => {
  const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-deploy-gate-')) });
  const stack = new WarmWebStack(app, 'DeployGate', {
    deletionProtection: false,
    web: {
      app: WebApp.wsgi('mysite.wsgi:application'),
      code: WebCode.fromDirectory(codeDir),
      environment: DJANGO,
      warming: { concurrency: 3 },
      provisionedConcurrency: { minCapacity: 1, maxCapacity: 4 },
      deployment: { migrations: [MIGRATE], trafficShifting: TrafficShifting.linear(20, Duration.minutes(2)) },
    },
  });
  stack.addWebFunction('Admin', {
    app: WebApp.nodeHandler('index.handler'),
    code: WebCode.fromDirectory(codeDir),
    runtime: lambda.Runtime.NODEJS_24_X,
    deployment: { migrations: [WebCommand.function('jobs/migrate.run')], trafficShifting: TrafficShifting.canary(10, Duration.minutes(5)) },
  });
  const assembly = app.synth();

  test('migrations, warming, provisioned concurrency and both shifts: no unacknowledged cdk-nag finding', () => {
    const result = new AwsSolutionsChecks().validateScope(stack);
    expect(result.violations).toEqual([]);
    expect(result.success).toBe(true);
  });

  test('... and cfn-lint clean', () => {
    const file = path.join(assembly.directory, assembly.getStackByName(stack.stackName).templateFile);
    // W3005: aws-cdk-lib's explicit DependsOn next to a Ref (accepted for every example in test/examples.test.ts).
    const run = spawnSync('cfn-lint', ['--format', 'parseable', '--ignore-checks', 'W3005', '--', file], { encoding: 'utf-8' });
    if (run.error) throw new Error(`cfn-lint could not run (${run.error.message}); scripts/test-all.sh installs it`);
    expect(run.stdout + run.stderr).toBe('');
    expect(run.status).toBe(0);
  });
});
