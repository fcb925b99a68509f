import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Duration, Lazy, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as sns from 'aws-cdk-lib/aws-sns';
import {
  ReadReplicaRouter, RouterDatabase, WarmWebFunction, WarmWebFunctionProps, WarmWebMonitoring, WarmWebMonitoringProps, WebApp, WebCache, WebCode,
} from '../lib';

const codeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-monitoring-code-'));
fs.writeFileSync(path.join(codeDir, 'app.py'), 'app = None\n');

/** A plain stack (no WarmWebStack) with a warmed, provisioned function, a router and a cache. */
function composed(fnProps: Partial<WarmWebFunctionProps> = {}, monitoringProps: WarmWebMonitoringProps = {}) {
  const app = new App();
  const stack = new Stack(app, 'Composed');
  const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
  const router = new ReadReplicaRouter(stack, 'Db', { vpc, database: RouterDatabase.aurora() });
  const cache = new WebCache(stack, 'Cache', { vpc });
  const web = new WarmWebFunction(stack, 'Web', {
    app: WebApp.wsgi('app:app'),
    code: WebCode.fromDirectory(codeDir),
    database: router,
    cache,
    warming: { concurrency: 2 },
    provisionedConcurrency: { minCapacity: 1, maxCapacity: 3 },
    ...fnProps,
  });
  const topic = new sns.Topic(stack, 'Ops');
  const monitoring = new WarmWebMonitoring(stack, 'Monitoring', { alarmActions: [new actions.SnsAction(topic)], ...monitoringProps });
  return { app, stack, vpc, router, cache, web, topic, monitoring, get template() { return Template.fromStack(stack); } };
}

function alarms(template: Template): any[] {
  return Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
}

function alarmOf(template: Template, description: RegExp): any {
  const found = alarms(template).filter((a) => description.test(a.AlarmDescription));
  expect(found).toHaveLength(1);
  return found[0];
}

function dashboardTitles(template: Template): string[] {
  const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
  const parts: unknown[] = dashboard.Properties.DashboardBody['Fn::Join'][1];
  const widgets = JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'REF')).join('')).widgets;
  return widgets.map((w: any) => w.properties.markdown ?? w.properties.title);
}

describe('WarmWebMonitoring without WarmWebStack', () => {
  const c = composed();
  c.monitoring.addFunction(c.web);
  c.monitoring.addRouter(c.router);
  c.monitoring.addCache(c.cache);
  const template = c.template;

  test('one dashboard of its own, a row per construct in the order added', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    expect(dashboardTitles(template).filter((t) => t.startsWith('## '))).toEqual([
      '## Web function Composed/Web', '## Database Composed/Db', '## Cache Composed/Cache',
    ]);
  });

  test('the alarms of WarmWebStack, all notifying the given action', () => {
    // 5 for the function, 2 for warming, 1 utilization (warmed: no spill-over), 3 database, 1 cache.
    expect(alarms(template)).toHaveLength(12);
    expect(c.monitoring.alarms).toHaveLength(12);
    for (const alarm of alarms(template)) {
      expect(alarm.AlarmActions).toEqual([{ Ref: c.stack.getLogicalId(c.topic.node.defaultChild as sns.CfnTopic) }]);
    }
  });

  test('the alarms belong to the constructs they watch (their ids are public)', () => {
    for (const id of ['ErrorRateAlarm', 'ThrottlesAlarm', 'DurationAlarm', 'ColdStartsAlarm', 'InitDurationAlarm', 'WarmCoverageAlarm', 'WarmThrottleAlarm']) {
      expect(c.web.node.findChild(id)).toBeInstanceOf(cloudwatch.Alarm);
    }
    expect(c.router.node.findChild('ReplicaLagAlarm')).toBeInstanceOf(cloudwatch.Alarm);
    expect(c.cache.node.findChild('HitRateAlarm')).toBeInstanceOf(cloudwatch.Alarm);
  });

  test('defaults: thresholds and periods as documented', () => {
    expect(alarmOf(template, /More than 1 % of invokes/)).toMatchObject({ Threshold: 1, EvaluationPeriods: 3 });
    expect(alarmOf(template, /were throttled/)).toMatchObject({ Threshold: 0, EvaluationPeriods: 1 });
    expect(alarmOf(template, /80 % of its 30 seconds timeout/)).toMatchObject({ Threshold: 24000, EvaluationPeriods: 3 });
    expect(alarmOf(template, /More than 10 cold starts/)).toMatchObject({ Threshold: 10, EvaluationPeriods: 3 });
    expect(alarmOf(template, /p99 INIT .* above 8 seconds/)).toMatchObject({ Threshold: 8000, EvaluationPeriods: 1 });
    expect(alarmOf(template, /lag the writer by more than 1 second/)).toMatchObject({ Threshold: 1000, EvaluationPeriods: 3 });
  });
});

describe('WarmWebMonitoring options', () => {
  test('every threshold in one shape per unit: counts, percentages, ratios, durations', () => {
    const c = composed({ initWarningThreshold: Duration.seconds(5) });
    c.monitoring.addFunction(c.web, {
      errorRateAlarm: { threshold: 5, evaluationPeriods: 6, datapointsToAlarm: 4 },
      coldStartsAlarm: { threshold: 25 },
      durationAlarm: { threshold: Duration.seconds(2) },
      warmCoverageAlarm: { threshold: 0.5 },
      utilizationAlarm: { threshold: 0.8, evaluationPeriods: 5 },
    });
    c.monitoring.addRouter(c.router, { replicaLagAlarm: { threshold: Duration.millis(500) }, connectionSaturationAlarm: { threshold: 75 } });
    c.monitoring.addCache(c.cache, { hitRateAlarm: { threshold: 20, evaluationPeriods: 8 } });
    const t = c.template;
    expect(alarmOf(t, /More than 5 % of invokes .* 30 minutes in a row/)).toMatchObject({ Threshold: 5, EvaluationPeriods: 6, DatapointsToAlarm: 4 });
    expect(alarmOf(t, /More than 25 cold starts/)).toMatchObject({ Threshold: 25 });
    expect(alarmOf(t, /p99 duration .* above 2 seconds/)).toMatchObject({ Threshold: 2000 });
    expect(alarmOf(t, /p99 INIT .* above 5 seconds/)).toMatchObject({ Threshold: 5000 }); // the function's initWarningThreshold
    expect(alarmOf(t, /Fewer warm environments than 0.5/)).toMatchObject({ Threshold: 0.5, ComparisonOperator: 'LessThanThreshold' });
    expect(alarmOf(t, /nearly exhausted/)).toMatchObject({ Threshold: 0.8, EvaluationPeriods: 5 });
    expect(alarmOf(t, /lag the writer by more than 500 millis/)).toMatchObject({ Threshold: 500 });
    expect(alarmOf(t, /above 75 % of the connections/)).toMatchObject({ Threshold: 75 });
    expect(alarmOf(t, /Fewer than 20 % of lookups/)).toMatchObject({ Threshold: 20, EvaluationPeriods: 8 });
  });

  test('a given dashboard gets the rows; calls with the same title share one row', () => {
    const c = composed({}, {});
    const stack = new Stack(c.app, 'Other');
    const dashboard = new cloudwatch.Dashboard(stack, 'Ops');
    const shared = new WarmWebMonitoring(c.stack, 'Shared', { dashboard });
    shared.addRouter(c.router, { title: 'Data', alarms: false });
    shared.addCache(c.cache, { title: 'Data', alarms: false });
    expect(dashboardTitles(Template.fromStack(stack))).toEqual(['## Data', 'Database connections', 'Replica lag', 'Cache hit rate (%)']);
    // No dashboard of its own when given one.
    expect(shared.node.tryFindChild('Dashboard')).toBeUndefined();
  });

  test('alarms: false adds widgets only, and makes no alarm', () => {
    const c = composed();
    c.monitoring.addFunction(c.web, { alarms: false });
    c.monitoring.addCache(c.cache, { alarms: false });
    expect(alarms(c.template)).toHaveLength(0);
    expect(c.monitoring.alarms).toHaveLength(0);
    expect(dashboardTitles(c.template)).toContain('## Web function Composed/Web');
  });

  test('spill-over alarms only without a warmer; the function alarms in the order of the table', () => {
    const c = composed({ warming: undefined });
    c.monitoring.addFunction(c.web);
    const descriptions = c.monitoring.alarms.map((a) => c.stack.resolve((a.node.defaultChild as cloudwatch.CfnAlarm).alarmDescription) as string);
    expect(descriptions.map((d) => d.split(' ').slice(0, 3).join(' '))).toEqual([
      'More than 1', 'Requests to Composed/Web', 'p99 duration of', 'More than 10', 'p99 INIT of', 'Requests to Composed/Web/LiveAlias', 'Provisioned concurrency of',
    ]);
  });

  test('addAlarm: an alarm of yours gets the actions, once', () => {
    const c = composed();
    const own = c.web.metricColdStarts().createAlarm(c.stack, 'Own', { threshold: 1, evaluationPeriods: 1 });
    c.monitoring.addAlarm(own);
    c.monitoring.addAlarm(own);
    expect(alarms(c.template)[0].AlarmActions).toHaveLength(1);
    expect(c.monitoring.alarms).toEqual([own]);
    const imported = cloudwatch.Alarm.fromAlarmArn(c.stack, 'Imported', 'arn:aws:cloudwatch:us-east-1:123456789012:alarm:x');
    expect(() => c.monitoring.addAlarm(imported)).toThrow(/Composed\/Monitoring: addAlarm: .* is an imported alarm/);
  });

  test('monitoring the same construct twice is refused; its alarm helpers stay idempotent', () => {
    const c = composed();
    c.monitoring.addFunction(c.web);
    expect(() => c.monitoring.addFunction(c.web)).toThrow(/Composed\/Monitoring: addFunction: Composed\/Web is already monitored here/);
    // A second monitoring of the same function shares its alarms, and adds its actions to them.
    const second = new WarmWebMonitoring(c.stack, 'Second');
    second.addFunction(c.web);
    expect(second.alarms).toEqual(c.monitoring.alarms);
    expect(() => new WarmWebMonitoring(c.stack, 'Third').addFunction(c.web, { coldStartsAlarm: { threshold: 3 } }))
      .toThrow(/coldStartsAlarm: Composed\/Web already has this alarm, with threshold 10; got 3/);
    expect(() => new WarmWebMonitoring(c.stack, 'Fourth').addFunction(c.web, { coldStartsAlarm: { evaluationPeriods: 5 } }))
      .toThrow(/coldStartsAlarm: Composed\/Web already has this alarm, with evaluationPeriods 3; got 5/);
  });

  test('in another stack than the constructs: the dashboard there, the alarms with the constructs', () => {
    const c = composed();
    const opsStack = new Stack(c.app, 'Ops');
    const ops = new WarmWebMonitoring(opsStack, 'Monitoring');
    ops.addFunction(c.web);
    Template.fromStack(opsStack).resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    Template.fromStack(opsStack).resourceCountIs('AWS::CloudWatch::Alarm', 0);
    expect(alarms(c.template).length).toBeGreaterThan(0);
  });

  test.each([
    [{ errorRateAlarm: { threshold: 100 } }, /Composed\/Web: errorRateAlarm: threshold is a percentage from 0 to below 100, got 100/],
    [{ coldStartsAlarm: { threshold: -1 } }, /Composed\/Web: coldStartsAlarm: threshold is a count >= 0, got -1/],
    [{ durationAlarm: { threshold: Duration.millis(0) } }, /Composed\/Web: durationAlarm: threshold is a duration above 0, got 0/],
    [{ throttlesAlarm: { evaluationPeriods: 0 } }, /Composed\/Web: throttlesAlarm: evaluationPeriods must be an integer >= 1, got 0/],
    [{ errorRateAlarm: { evaluationPeriods: 2, datapointsToAlarm: 3 } }, /errorRateAlarm: datapointsToAlarm must be an integer from 1 to evaluationPeriods \(2\), got 3/],
    [{ warmCoverageAlarm: { threshold: 1.5 } }, /Composed\/Web: addWarmCoverageAlarm: threshold is a ratio above 0 and at most 1, got 1.5/],
  ])('rejects %j', (options, message) => {
    const c = composed();
    expect(() => c.monitoring.addFunction(c.web, options)).toThrow(message);
  });

  test('dashboardName is for a new dashboard only', () => {
    const stack = new Stack(new App(), 'S');
    expect(() => new WarmWebMonitoring(stack, 'M', { dashboard: new cloudwatch.Dashboard(stack, 'D'), dashboardName: 'x' }))
      .toThrow(/S\/M: dashboardName 'x' is for a new dashboard/);
  });

  test('thresholds that are tokens are not checked, and never show as numbers', () => {
    const c = composed();
    const token = Lazy.number({ produce: () => 7 });
    expect(() => c.monitoring.addFunction(c.web, {
      errorRateAlarm: { threshold: token, evaluationPeriods: token },
      coldStartsAlarm: { threshold: token },
      utilizationAlarm: { threshold: Lazy.number({ produce: () => 0.5 }) },
    })).not.toThrow();
    const json = JSON.stringify(c.template.toJSON());
    expect(json).not.toMatch(/e\+/);
    expect(alarmOf(c.template, /More than 7 cold starts/)).toMatchObject({ Threshold: 7 });
    expect(alarmOf(c.template, /More than 7 % of invokes .* 7 periods of 5 minutes in a row/)).toMatchObject({ EvaluationPeriods: 7 });
  });
});
