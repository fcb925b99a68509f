import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Duration, Stack, TimeZone } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { WarmSchedule, WarmWebFunction, WarmWebFunctionProps, WebApp, WebCode } from '../lib';

const codeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-code-'));
fs.writeFileSync(path.join(codeDir, 'app.py'), 'app = None\n');

function webFunction(stack: Stack, id: string, props: Partial<WarmWebFunctionProps> = {}) {
  return new WarmWebFunction(stack, id, { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir), ...props });
}

function warmerStack(props: Partial<WarmWebFunctionProps> = { warming: {} }) {
  const stack = new Stack(new App(), 'TestStack');
  const fn = webFunction(stack, 'Web', props);
  return { stack, fn, template: Template.fromStack(stack) };
}

/** The schedule's input as JSON, with each CloudFormation reference shown as `<LogicalId>`. */
function inputsOf(template: Template) {
  const render = (part: unknown): string => (typeof part === 'string' ? part : `<${Object.values(part as object).flat()[0]}>`);
  return Object.values(template.findResources('AWS::Scheduler::Schedule')).map((s) => {
    const input = s.Properties.Target.Input;
    return JSON.parse(typeof input === 'string' ? input : input['Fn::Join'][1].map(render).join(''));
  });
}

describe('Warmer', () => {
  test('default: one warmer function, every 5 minutes, 1 environment of the live alias, no retries', () => {
    const { template } = warmerStack();
    template.resourceCountIs('AWS::Scheduler::Schedule', 1);
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(5 minutes)',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: { RetryPolicy: { MaximumRetryAttempts: 0 } },
    });
    const [input] = inputsOf(template);
    const [aliasId] = Object.keys(template.findResources('AWS::Lambda::Alias'));
    expect(input.targets).toHaveLength(1);
    expect(input.targets[0].functionArn).toBe(`<${aliasId}>`);
    expect(input.targets[0].concurrency).toBe(1);
    expect(input.targets[0].holdMs).toBe(250);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('cdk-warm-web warmer'),
      Runtime: 'nodejs24.x',
      Handler: 'index.handler',
      Timeout: 120,
      // One vCPU: a slower warmer spreads its pings out, and every ping holds until the last arrives.
      MemorySize: 1769,
    });
  });

  test('targets the alias ARN, never the function or $LATEST', () => {
    const { template } = warmerStack();
    const [aliasId] = Object.keys(template.findResources('AWS::Lambda::Alias'));
    const [functionId] = Object.keys(template.findResources('AWS::Lambda::Function', { Properties: { Handler: 'warm_web.handler.handler' } }));
    const schedule = Object.values(template.findResources('AWS::Scheduler::Schedule'))[0];
    expect(JSON.stringify(schedule.Properties.Target.Input)).toContain(aliasId);
    expect(JSON.stringify(schedule.Properties.Target.Input)).not.toContain(functionId);
    expect(JSON.stringify(template.toJSON())).not.toContain('$LATEST');
  });

  test('IAM: the warmer may invoke exactly the warmed aliases and nothing wider', () => {
    const stack = new Stack(new App(), 'TestStack');
    webFunction(stack, 'Web', { warming: {} });
    webFunction(stack, 'Admin', { warming: { concurrency: 2 } });
    webFunction(stack, 'Cold');
    const template = Template.fromStack(stack);
    const aliases = Object.keys(template.findResources('AWS::Lambda::Alias')).sort();
    const policies = template.findResources('AWS::IAM::Policy', { Properties: { PolicyName: Match.stringLikeRegexp('InvokeAliases') } });
    const statements = Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement);
    expect(statements.every((s) => s.Action === 'lambda:InvokeFunction' && s.Effect === 'Allow')).toBe(true);
    const resources = statements.map((s) => s.Resource.Ref).sort();
    expect(resources).toEqual(aliases.filter((id) => !id.startsWith('Cold')));
    template.resourceCountIs('AWS::Lambda::Function', 4); // three web functions, one warmer
  });

  test('several schedules with their own concurrency, in a time zone', () => {
    const { template } = warmerStack({
      warming: {
        schedules: [
          WarmSchedule.cron({ minute: '0/5', hour: '8-19', weekDay: 'MON-FRI', timeZone: TimeZone.EUROPE_BERLIN, concurrency: 20 }),
          WarmSchedule.cron({ minute: '0/5', hour: '0-7,20-23', weekDay: 'MON-FRI', timeZone: TimeZone.EUROPE_BERLIN, concurrency: 2 }),
          WarmSchedule.cron({ minute: '0/5', weekDay: 'SAT,SUN', timeZone: TimeZone.EUROPE_BERLIN, concurrency: 2 }),
        ],
      },
    });
    template.resourceCountIs('AWS::Scheduler::Schedule', 3);
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0/5 8-19 ? * MON-FRI *)',
      ScheduleExpressionTimezone: 'Europe/Berlin',
    });
    expect(inputsOf(template).map((i) => i.targets[0].concurrency).sort()).toEqual([2, 2, 20]);
  });

  test('pre-warms each new version at the largest scheduled concurrency', () => {
    const { template } = warmerStack({
      warming: { schedules: [WarmSchedule.every(Duration.minutes(5), 3), WarmSchedule.every(Duration.hours(1), 7)] },
    });
    const [versionId] = Object.keys(template.findResources('AWS::Lambda::Version'));
    template.hasResourceProperties('Custom::WarmWebPrewarm', {
      ServiceToken: { 'Fn::GetAtt': [Match.stringLikeRegexp('^WarmWebWarmer'), 'Arn'] },
      Version: { 'Fn::GetAtt': [versionId, 'Version'] },
      Targets: [Match.objectLike({ concurrency: 7, holdMs: 250 })],
    });
  });

  test('the pre-warm is keyed on the version: a code or config change re-runs it', () => {
    const versionProp = (memorySize: number) => {
      const { template } = warmerStack({ memorySize, warming: {} });
      return JSON.stringify(Object.values(template.findResources('Custom::WarmWebPrewarm'))[0].Properties.Version);
    };
    expect(versionProp(1024)).not.toEqual(versionProp(2048));
  });

  test('pre-warm can be turned off', () => {
    const { template } = warmerStack({ warming: { prewarmOnDeploy: false } });
    template.resourceCountIs('Custom::WarmWebPrewarm', 0);
  });

  test('one warmer per stack', () => {
    const stack = new Stack(new App(), 'TestStack');
    webFunction(stack, 'A', { warming: {} });
    webFunction(stack, 'B', { warming: {} });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Scheduler::Schedule', 2);
    expect(Object.values(template.findResources('AWS::Lambda::Function'))
      .filter((f) => String(f.Properties.Description).includes('warmer'))).toHaveLength(1);
  });

  test('metricWarmCoverage reads the warmer metric for this function', () => {
    const { stack, fn } = warmerStack();
    const metric = fn.metricWarmCoverage();
    expect(metric.namespace).toBe('WarmWeb');
    expect(metric.metricName).toBe('WarmCoverage');
    expect(metric.statistic).toBe('Minimum');
    expect(stack.resolve(metric.dimensions)).toEqual({ FunctionName: stack.resolve(fn.lambdaFunction.functionName) });
  });

  test('a coverage alarm: below 1 for three 5-minute periods, or no data at all', () => {
    const stack = new Stack(new App(), 'TestStack');
    webFunction(stack, 'Web', { warming: {} }).addWarmCoverageAlarm();
    Template.fromStack(stack).hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'WarmWeb',
      MetricName: 'WarmCoverage',
      Statistic: 'Minimum',
      Period: 300,
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      EvaluationPeriods: 3,
      TreatMissingData: 'breaching',
    });
  });

  test('a coverage alarm needs warming', () => {
    const { fn } = warmerStack({});
    expect(() => fn.addWarmCoverageAlarm()).toThrow(/addWarmCoverageAlarm: TestStack\/Web has no warming configured/);
  });

  test('no unacknowledged cdk-nag finding', () => {
    const { stack } = warmerStack();
    expect(new AwsSolutionsChecks().validateScope(stack).violations).toEqual([]);
  });
});

describe('Warmer validation', () => {
  test.each([0, 1001, 2.5])('concurrency %s', (concurrency) => {
    expect(() => warmerStack({ warming: { concurrency } }))
      .toThrow(new RegExp(`concurrency must be an integer from 1 to 1000, got ${concurrency}`));
  });

  test('an interval under a minute', () => {
    expect(() => WarmSchedule.every(Duration.seconds(30), 1)).toThrow(/interval must be at least 1 minute, got 30 seconds/);
  });

  test.each([Duration.millis(5), Duration.seconds(11)])('holdTime %s', (holdTime) => {
    expect(() => warmerStack({ warming: { holdTime } })).toThrow(/warming.holdTime must be between 10 milliseconds and 10 seconds/);
  });

  test('concurrency and schedules together', () => {
    expect(() => warmerStack({ warming: { concurrency: 2, schedules: [WarmSchedule.every(Duration.minutes(5), 2)] } }))
      .toThrow(/either concurrency .* or schedules/);
  });

  test('empty schedules', () => {
    expect(() => warmerStack({ warming: { schedules: [] } })).toThrow(/warming.schedules must not be empty/);
  });

  test('more warm environments than the reserved concurrency', () => {
    expect(() => warmerStack({ reservedConcurrentExecutions: 5, warming: { concurrency: 10 } }))
      .toThrow(/warming asks for 10 environments but reservedConcurrentExecutions is 5/);
  });
});
