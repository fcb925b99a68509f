import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Duration, Lazy, Stack, TimeZone } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks } from 'cdk-nag';
import {
  CapacitySchedule, ProvisionedAutoScaling, ProvisionedConcurrencyOptions, UtilizationStatistic,
  WarmWebFunction, WarmWebFunctionProps, WebApp, WebCode,
} from '../lib';

const codeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-code-'));
fs.writeFileSync(path.join(codeDir, 'app.py'), 'app = None\n');

function withPc(provisionedConcurrency: ProvisionedConcurrencyOptions, props: Partial<WarmWebFunctionProps> = {}) {
  const stack = new Stack(new App(), 'TestStack');
  const fn = new WarmWebFunction(stack, 'Web', { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir), provisionedConcurrency, ...props });
  return { stack, fn };
}

describe('ProvisionedAutoScaling', () => {
  test('provisions the live alias and registers it with auto scaling', () => {
    const { stack } = withPc({ minCapacity: 2, maxCapacity: 10 });
    const template = Template.fromStack(stack);
    const [functionId] = Object.keys(template.findResources('AWS::Lambda::Function'));
    template.hasResourceProperties('AWS::Lambda::Alias', { Name: 'live', ProvisionedConcurrencyConfig: { ProvisionedConcurrentExecutions: 2 } });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      ServiceNamespace: 'lambda',
      ScalableDimension: 'lambda:function:ProvisionedConcurrency',
      ResourceId: { 'Fn::Join': ['', ['function:', { Ref: functionId }, ':live']] },
      MinCapacity: 2,
      MaxCapacity: 10,
    });
  });

  test('tracks the Maximum of ProvisionedConcurrencyUtilization at 0.7 by default', () => {
    const { stack } = withPc({ minCapacity: 1, maxCapacity: 5 });
    Template.fromStack(stack).hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: {
        TargetValue: 0.7,
        CustomizedMetricSpecification: Match.objectLike({
          Namespace: 'AWS/Lambda',
          MetricName: 'ProvisionedConcurrencyUtilization',
          Statistic: 'Maximum',
          Dimensions: [Match.objectLike({ Name: 'FunctionName' }), Match.objectLike({ Name: 'Resource' })],
        }),
      },
    });
  });

  test('Average statistic, target and cooldowns pass through', () => {
    const { stack } = withPc({
      minCapacity: 1,
      maxCapacity: 5,
      statistic: UtilizationStatistic.AVERAGE,
      utilizationTarget: 0.5,
      scaleInCooldown: Duration.minutes(10),
      scaleOutCooldown: Duration.seconds(30),
    });
    Template.fromStack(stack).hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      TargetTrackingScalingPolicyConfiguration: {
        TargetValue: 0.5,
        ScaleInCooldown: 600,
        ScaleOutCooldown: 30,
        CustomizedMetricSpecification: Match.objectLike({ Statistic: 'Average' }),
      },
    });
  });

  test('scheduled actions in a time zone', () => {
    const { stack } = withPc({
      minCapacity: 2,
      maxCapacity: 40,
      schedules: [
        CapacitySchedule.cron({ minute: '0', hour: '8', weekDay: 'MON-FRI', timeZone: TimeZone.EUROPE_BERLIN, minCapacity: 20 }),
        CapacitySchedule.cron({ minute: '0', hour: '20', weekDay: 'MON-FRI', timeZone: TimeZone.EUROPE_BERLIN, minCapacity: 2 }),
      ],
    });
    Template.fromStack(stack).hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      ScheduledActions: [
        { ScheduledActionName: 'Schedule0', Schedule: 'cron(0 8 ? * MON-FRI *)', Timezone: 'Europe/Berlin', ScalableTargetAction: { MinCapacity: 20 } },
        { ScheduledActionName: 'Schedule1', Schedule: 'cron(0 20 ? * MON-FRI *)', Timezone: 'Europe/Berlin', ScalableTargetAction: { MinCapacity: 2 } },
      ],
    });
  });

  test('alarm helpers: spillover above 0, utilization near 1', () => {
    const { stack, fn } = withPc({ minCapacity: 1, maxCapacity: 5 });
    fn.provisionedAutoScaling!.addSpilloverAlarm();
    fn.provisionedAutoScaling!.addUtilizationAlarm();
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ProvisionedConcurrencySpilloverInvocations', Statistic: 'Sum', Threshold: 0, ComparisonOperator: 'GreaterThanThreshold',
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ProvisionedConcurrencyUtilization', Statistic: 'Maximum', Threshold: 0.9, ComparisonOperator: 'GreaterThanOrEqualToThreshold', EvaluationPeriods: 3,
    });
    expect(() => fn.provisionedAutoScaling!.addUtilizationAlarm({ threshold: 1.5 })).toThrow(/threshold must be in \(0, 1\], got 1.5/);
  });

  test('warns when a warmer pays for environments provisioned concurrency already keeps ready', () => {
    const { stack } = withPc({ minCapacity: 5, maxCapacity: 10 }, { warming: { concurrency: 5 } });
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('warming keeps 5 environments warm but provisioned concurrency already keeps 5 ready'));
  });

  test('says what each strategy would cost, as an info annotation', () => {
    const { stack } = withPc({ minCapacity: 10, maxCapacity: 20 });
    // 10 x 1 GB arm64: 10 * 2,628,000 s * $0.0000033334 = $87.60 configured; at 0.7 utilization the
    // cheaper duration saves 0.7 * 26,280,000 GB-s * ($0.0000133334 - $0.0000077778) = $102.20: $14.60 less.
    const infos = Annotations.fromStack(stack).findInfo('*', Match.stringLikeRegexp('cost per month'));
    expect(infos.map((i) => i.entry.data)).toEqual([expect.stringMatching(new RegExp(
      '^cost per month of keeping 10 x 1024 MB environments ready \\(us-east-1 list prices\\): warmer \\$[0-9]+\\.[0-9]{2}; '
      + 'provisioned concurrency \\$87\\.60 configured, at 70 % utilization \\$14\\.60 less than the same traffic on demand; '
      + 'SnapStart \\$[0-9]+\\.[0-9]{2} .*compares them$'))]);
  });

  test('below the break-even utilization, provisioned concurrency costs more than on demand, said without a sign', () => {
    // At 0.3: saves 0.3 * 26,280,000 * $0.0000055556 = $43.80 of $87.60: $43.80 more than on demand, as the README's table says.
    const { stack } = withPc({ minCapacity: 10, maxCapacity: 20, utilizationTarget: 0.3 });
    const infos = Annotations.fromStack(stack).findInfo('*', Match.stringLikeRegexp('cost per month'));
    expect(infos.map((i) => i.entry.data)).toEqual([expect.stringMatching(/at 30 % utilization \$43\.80 more than the same traffic on demand/)]);
    expect(String(infos[0]!.entry.data)).not.toMatch(/\$-|docs\//);
  });

  test('no unacknowledged cdk-nag finding', () => {
    const { stack } = withPc({ minCapacity: 1, maxCapacity: 5 });
    expect(new AwsSolutionsChecks().validateScope(stack).violations).toEqual([]);
  });
});

describe('ProvisionedAutoScaling validation', () => {
  test('max below min', () => {
    expect(() => withPc({ minCapacity: 5, maxCapacity: 2 })).toThrow(/maxCapacity \(2\) is less than minCapacity \(5\)/);
  });

  test.each([0.05, 0.95])('utilizationTarget %s', (utilizationTarget) => {
    expect(() => withPc({ minCapacity: 1, maxCapacity: 2, utilizationTarget }))
      .toThrow(new RegExp(`utilizationTarget must be between 0.1 and 0.9, got ${utilizationTarget}`));
  });

  test('negative or fractional capacities', () => {
    expect(() => withPc({ minCapacity: -1, maxCapacity: 2 })).toThrow(/minCapacity must be an integer >= 0, got -1/);
    expect(() => withPc({ minCapacity: 0, maxCapacity: 0.5 })).toThrow(/maxCapacity must be an integer >= 1, got 0.5/);
  });

  test('a schedule whose range is upside down', () => {
    expect(() => withPc({ minCapacity: 1, maxCapacity: 10, schedules: [CapacitySchedule.cron({ hour: '8', minute: '0', minCapacity: 20 })] }))
      .toThrow(/schedules\[0\] would set maxCapacity 10 below minCapacity 20/);
  });

  test('two schedules at the same time that disagree', () => {
    const at8 = { hour: '8', minute: '0', weekDay: 'MON-FRI', timeZone: TimeZone.EUROPE_BERLIN };
    const schedules = [CapacitySchedule.cron({ ...at8, minCapacity: 10 }), CapacitySchedule.cron({ ...at8, minCapacity: 20 })];
    expect(() => withPc({ minCapacity: 1, maxCapacity: 30, schedules }))
      .toThrow(/schedules\[0\] and schedules\[1\] fire at the same time with different capacities/);
  });

  test('a schedule that changes nothing', () => {
    expect(() => CapacitySchedule.cron({ hour: '8' })).toThrow(/give minCapacity, maxCapacity or both/);
  });

  test('an alias on $LATEST has no published version to provision', () => {
    const stack = new Stack(new App(), 'S');
    const fn = new lambda.Function(stack, 'Fn', { runtime: lambda.Runtime.PYTHON_3_14, handler: 'a.b', code: lambda.Code.fromInline('x') });
    const alias = new lambda.Alias(stack, 'A', { aliasName: 'live', version: fn.latestVersion });
    expect(() => new ProvisionedAutoScaling(stack, 'Pc', { alias, minCapacity: 1, maxCapacity: 2 }))
      .toThrow(/provisioned concurrency needs a published version; alias live points at \$LATEST/);
  });
});

describe('ProvisionedAutoScaling errors name the construct; tokens are not numbers', () => {
  test('a validation error starts with the construct\'s path', () => {
    expect(() => withPc({ minCapacity: -1, maxCapacity: 2 })).toThrow(/^TestStack\/Web\/ProvisionedConcurrency: provisionedConcurrency.minCapacity must be/);
  });

  test('tokenised capacities and thresholds pass, and never show as numbers', () => {
    // (A tokenised minCapacity is refused by aws-cdk-lib's Alias, which compares it as a number.)
    const { stack, fn } = withPc({
      minCapacity: 1, maxCapacity: Lazy.number({ produce: () => 4 }), utilizationTarget: Lazy.number({ produce: () => 0.5 }),
    });
    fn.provisionedAutoScaling!.addUtilizationAlarm({ threshold: Lazy.number({ produce: () => 0.8 }) });
    fn.provisionedAutoScaling!.addSpilloverAlarm({ threshold: Lazy.number({ produce: () => 3 }) });
    const template = Template.fromStack(stack);
    expect(JSON.stringify(template.toJSON())).not.toMatch(/e\+/);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ProvisionedConcurrencyUtilization', Threshold: 0.8 });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ProvisionedConcurrencySpilloverInvocations', Threshold: 3, AlarmDescription: Match.stringLikeRegexp('More than 3 requests'),
    });
  });
});
