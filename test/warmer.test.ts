import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, CfnParameter, Duration, Stack, TimeZone, Token } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ANSWER_RESERVE_MS, FUNCTION_TIMEOUT_MS } from '../handlers/warmer';
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

  test('the warmer\'s budget is its function timeout; CloudFormation waits for a pre-warm minutes, not an hour', () => {
    const { template } = warmerStack();
    const [warmer] = Object.values(template.findResources('AWS::Lambda::Function', { Properties: { Description: Match.stringLikeRegexp('warmer') } }));
    // The run falls back to this budget without a Lambda context; with one it reads the remaining time.
    expect(warmer.Properties.Timeout * 1000).toBe(FUNCTION_TIMEOUT_MS);
    expect(ANSWER_RESERVE_MS).toBeLessThan(FUNCTION_TIMEOUT_MS / 10);
    const [prewarm] = Object.values(template.findResources('Custom::WarmWebPrewarm'));
    // Longer than a run and Lambda's retry of a killed one (after about a minute); CloudFormation's default is 3600.
    expect(Number(prewarm.Properties.ServiceTimeout)).toBe(2 * warmer.Properties.Timeout + 60);
  });

  test('a concurrency token (a CfnParameter) reaches the schedule, its description and the pre-warm as its reference', () => {
    const stack = new Stack(new App(), 'TestStack');
    const peak = new CfnParameter(stack, 'Peak', { type: 'Number', default: 20 });
    webFunction(stack, 'Web', { warming: { schedules: [WarmSchedule.every(Duration.minutes(5), peak.valueAsNumber), WarmSchedule.every(Duration.hours(1), 3)] } });
    const template = Template.fromStack(stack);
    const json = JSON.stringify(template.toJSON());
    // A number token in a string would be a huge negative number, never resolved.
    expect(json).not.toMatch(/e\+\d{3}/);
    const descriptions = Object.values(template.findResources('AWS::Scheduler::Schedule')).map((s) => JSON.stringify(s.Properties.Description));
    expect(descriptions.filter((d) => d.includes('{"Ref":"Peak"}'))).toHaveLength(1);
    expect(inputsOf(template).map((i) => i.targets[0].concurrency).sort()).toEqual([3, '<Peak>']);
    // Math.max would take the token for the least: the warmer gets both and warms at the larger.
    template.hasResourceProperties('Custom::WarmWebPrewarm', { Targets: [Match.objectLike({ concurrency: [{ Ref: 'Peak' }, 3] })] });
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

  test('concurrency from a token is left to the warmer, which checks it at run time', () => {
    const stack = new Stack(new App(), 'TestStack');
    const n = new CfnParameter(stack, 'N', { type: 'Number' }).valueAsNumber;
    expect(WarmSchedule.every(Duration.minutes(5), n).concurrency).toBe(n);
    expect(() => WarmSchedule.every(Duration.minutes(5), 1001)).toThrow(/WarmSchedule \(every 5 minutes\): concurrency must be an integer from 1 to 1000, got 1001/);
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

  test('errors about warming name the warmed function', () => {
    expect(() => warmerStack({ warming: { schedules: [] } })).toThrow(/^TestStack\/Web: warming.schedules must not be empty/);
    expect(() => warmerStack({ reservedConcurrentExecutions: 5, warming: { concurrency: 10 } })).toThrow(/^TestStack\/Web: warming asks for 10/);
  });

  test('more warm environments than the reserved concurrency', () => {
    expect(() => warmerStack({ reservedConcurrentExecutions: 5, warming: { concurrency: 10 } }))
      .toThrow(/warming asks for 10 environments but reservedConcurrentExecutions is 5/);
  });
});

describe('WarmSchedule.cron fields', () => {
  const cron = (fields: Partial<Parameters<typeof WarmSchedule.cron>[0]>) => WarmSchedule.cron({ concurrency: 2, ...fields });

  test('a missing minute is an error: every-minute warming is 5 times the runs of the default', () => {
    expect(() => cron({ hour: '8-19', weekDay: 'MON-FRI' })).toThrow(/WarmSchedule\.cron: give minute, e\.g\. '0\/5'.*every minute, 5 times the runs.*minute: '\*'/);
    expect(cron({ minute: '*', hour: '8-19' }).expression.expressionString).toBe('cron(* 8-19 * * ? *)');
  });

  test.each([
    [{ minute: '0/5', hour: '8-19', weekDay: 'MON-FRI' }, 'cron(0/5 8-19 ? * MON-FRI *)'],
    [{ minute: '*/10', hour: '0-7,20-23' }, 'cron(*/10 0-7,20-23 * * ? *)'],
    [{ minute: '0,30', hour: '9', day: 'L' }, 'cron(0,30 9 L * ? *)'],
    [{ minute: '15', day: '15W', month: 'JAN-MAR' }, 'cron(15 * 15W JAN-MAR ? *)'],
    [{ minute: '0', hour: '12', weekDay: '6#3' }, 'cron(0 12 ? * 6#3 *)'],
    [{ minute: '0', weekDay: '6L', year: '2027-2030/2' }, 'cron(0 * ? * 6L 2027-2030/2)'],
    [{ minute: '5-55/10', day: '1-15/2', month: '*/3' }, 'cron(5-55/10 * 1-15/2 */3 ? *)'],
  ])('%j is a valid cron', (fields, expression) => {
    expect(cron(fields).expression.expressionString).toBe(expression);
  });

  test.each([
    [{ minute: '0', hour: '25' }, 'hour', '25', '0-23'],
    [{ minute: '60' }, 'minute', '60', '0-59'],
    [{ minute: '5-61' }, 'minute', '5-61', '0-59'],
    [{ minute: '0/0' }, 'minute', '0/0', '0-59'],
    [{ minute: '1,,2' }, 'minute', '1,,2', '0-59'],
    [{ minute: '' }, 'minute', '', '0-59'],
    [{ minute: '*', hour: 'noon' }, 'hour', 'noon', '0-23'],
    [{ minute: '0', day: '32' }, 'day', '32', '1-31'],
    [{ minute: '0', day: '0W' }, 'day', '0W', '1-31'],
    [{ minute: '0', month: '13' }, 'month', '13', '1-12'],
    [{ minute: '0', month: 'JAN-FOO' }, 'month', 'JAN-FOO', '1-12'],
    [{ minute: '0', weekDay: '8' }, 'weekDay', '8', '1-7'],
    [{ minute: '0', weekDay: '2#6' }, 'weekDay', '2#6', '1-7'],
    [{ minute: '0', weekDay: '3#1,6#3' }, 'weekDay', '3#1,6#3', '1-7'],
    [{ minute: '0', weekDay: 'MON/2' }, 'weekDay', 'MON/2', '1-7'],
    [{ minute: '0', hour: '?' }, 'hour', '?', '0-23'],
    [{ minute: '0', year: '1969' }, 'year', '1969', '1970-2199'],
  ])('%j names the field and the value', (fields, field, value, range) => {
    expect(() => cron(fields)).toThrow(`WarmSchedule.cron: ${field} must be an EventBridge Scheduler cron field (values ${range}, `);
    expect(() => cron(fields)).toThrow(`got '${value}'`);
  });

  test('day \'?\' alone would leave both day fields \'?\'', () => {
    expect(() => cron({ minute: '0', day: '?' })).toThrow(/WarmSchedule\.cron: day '\?' needs a weekDay/);
  });

  test('tokens are left to EventBridge Scheduler', () => {
    const stack = new Stack(new App(), 'TestStack');
    const hour = new CfnParameter(stack, 'Hour', { type: 'String' }).valueAsString;
    expect(Token.isUnresolved(cron({ minute: '0', hour }).expression.expressionString)).toBe(true);
  });
});
