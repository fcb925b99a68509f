import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Duration, Stack, TimeZone } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { WarmWebFunction, WebApp, WebCode, WebCommand, WebCommandSchedule, WebCommandScheduleProps } from '../lib';

const codeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-schedule-code-'));
fs.writeFileSync(path.join(codeDir, 'app.py'), 'app = None\n');
const DAILY = scheduler.ScheduleExpression.cron({ hour: '3', minute: '0', timeZone: TimeZone.EUROPE_BERLIN });

function stackWith(props: Partial<WebCommandScheduleProps> = {}, app = WebApp.wsgi('mysite.wsgi:application')) {
  const stack = new Stack(new App(), 'TestStack');
  const web = new WarmWebFunction(stack, 'Web', { app, code: WebCode.fromDirectory(codeDir) });
  const schedule = new WebCommandSchedule(stack, 'ClearSessions', { function: web, command: WebCommand.django('clearsessions'), schedule: DAILY, ...props });
  return { stack, web, schedule };
}

describe('WebCommandSchedule', () => {
  const { stack, web } = stackWith();
  const template = Template.fromStack(stack);
  const aliasId = stack.getLogicalId(web.alias.node.defaultChild as never);

  test('an EventBridge Scheduler schedule sends the command event to the live alias', () => {
    template.resourceCountIs('AWS::Scheduler::Schedule', 1);
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0 3 * * ? *)',
      ScheduleExpressionTimezone: 'Europe/Berlin',
      State: 'ENABLED',
      Description: "Runs 'django clearsessions' on TestStack/Web/LiveAlias",
      Target: {
        Arn: { Ref: aliasId },
        Input: JSON.stringify(WebCommand.django('clearsessions').toEvent()),
        RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 3600 },
        RoleArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ClearSessionsRole'), 'Arn'] },
      },
    });
  });

  test('its role may invoke the alias and nothing else', () => {
    const policies = template.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: Match.stringLikeRegexp('^ClearSessionsRole') }] } });
    type Policy = { Properties: { PolicyDocument: { Statement: unknown[] } } };
    const statements = Object.values(policies).flatMap((p) => (p as Policy).Properties.PolicyDocument.Statement);
    expect(statements).toEqual([{ Action: 'lambda:InvokeFunction', Effect: 'Allow', Resource: { Ref: aliasId } }]);
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 'scheduler.amazonaws.com' } })] },
    });
  });

  test('metricFailures counts CommandFailures of the function and command kind; the alarm helper is idempotent', () => {
    const { stack: own, web: fn, schedule } = stackWith();
    const metric = schedule.metricFailures();
    expect(metric.namespace).toBe('WarmWeb');
    expect(metric.metricName).toBe('CommandFailures');
    expect(metric.statistic).toBe('Sum');
    expect(Object.keys(metric.dimensions!)).toEqual(['FunctionName', 'CommandKind']);
    expect(metric.dimensions!.CommandKind).toBe('django');
    expect(own.resolve(metric.dimensions!.FunctionName)).toEqual({ Ref: own.getLogicalId(fn.lambdaFunction.node.defaultChild as never) });
    const alarm = schedule.addFailureAlarm();
    expect(schedule.addFailureAlarm()).toBe(alarm);
    const withAlarm = Template.fromStack(own);
    withAlarm.resourceCountIs('AWS::CloudWatch::Alarm', 1);
    withAlarm.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'CommandFailures',
      Namespace: 'WarmWeb',
      Threshold: 1,
      EvaluationPeriods: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      Dimensions: Match.arrayWith([{ Name: 'CommandKind', Value: 'django' }]),
    });
  });

  test('retry policy, dead-letter queue and a disabled schedule', () => {
    const dlqStack = new Stack(new App(), 'Dlq');
    const fn = new WarmWebFunction(dlqStack, 'Web', { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir) });
    const queue = new sqs.Queue(dlqStack, 'Dlq', { enforceSSL: true });
    new WebCommandSchedule(dlqStack, 'Reindex', {
      function: fn,
      command: WebCommand.function('tasks:reindex', '--full'),
      schedule: scheduler.ScheduleExpression.rate(Duration.hours(6)),
      retryAttempts: 0,
      maxEventAge: Duration.minutes(5),
      deadLetterQueue: queue,
      enabled: false,
    });
    const t = Template.fromStack(dlqStack);
    t.hasResourceProperties('AWS::Scheduler::Schedule', {
      State: 'DISABLED',
      ScheduleExpression: 'rate(6 hours)',
      Target: {
        Input: '{"warmWebCommand":{"v":1,"kind":"function","args":["--full"],"target":"tasks:reindex"}}',
        RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 300 },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Dlq'), 'Arn'] } },
      },
    });
  });

  test('a Node function runs function commands with Node targets', () => {
    const { stack: node } = stackWith({ command: WebCommand.function('jobs/cleanup.run') }, WebApp.nodeRequestListener('server.app'));
    Template.fromStack(node).hasResourceProperties('AWS::Scheduler::Schedule', {
      Target: { Input: '{"warmWebCommand":{"v":1,"kind":"function","args":[]' + ',"target":"jobs/cleanup.run"}}' },
    });
  });

  test.each([
    [{ retryAttempts: -1 }, /WebCommandSchedule TestStack\/ClearSessions: retryAttempts must be an integer from 0 to 185, got -1/],
    [{ retryAttempts: 186 }, /retryAttempts must be an integer from 0 to 185, got 186/],
    [{ retryAttempts: 1.5 }, /retryAttempts must be an integer from 0 to 185, got 1.5/],
    [{ maxEventAge: Duration.seconds(30) }, /WebCommandSchedule TestStack\/ClearSessions: maxEventAge must be from 1 minute to 24 hours, got 30 seconds/],
    [{ maxEventAge: Duration.hours(25) }, /maxEventAge must be from 1 minute to 24 hours, got 1 day 1 hour/],
    [{ command: WebCommand.function('jobs/cleanup.run') }, /command target 'jobs\/cleanup.run' is not a module:function \(Python\) target, and TestStack\/Web runs Python/],
  ])('%j is refused', (props, message) => {
    expect(() => stackWith(props)).toThrow(message);
  });

  test.each([
    [WebCommand.django('migrate'), /WebCommandSchedule TestStack\/ClearSessions: command 'django migrate' is a django command, and TestStack\/Web runs Node/],
    [WebCommand.flask('routes'), /command 'flask routes' is a flask command, and TestStack\/Web runs Node/],
    [WebCommand.function('tasks:reindex'), /command target 'tasks:reindex' is not a path\/module.export \(Node\) target, and TestStack\/Web runs Node/],
  ])('%s on a Node function is refused', (command, message) => {
    expect(() => stackWith({ command }, WebApp.nodeHandler('index.handler'))).toThrow(message);
  });

  test('cdk-nag AwsSolutions and cfn-lint are clean', () => {
    const { stack: checked, schedule: s } = stackWith();
    s.addFailureAlarm();
    const result = new AwsSolutionsChecks().validateScope(checked);
    expect(result.violations).toEqual([]);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-schedule-')), 'template.json');
    fs.writeFileSync(file, JSON.stringify(Template.fromStack(checked).toJSON()));
    const run = spawnSync('cfn-lint', ['--format', 'parseable', '--ignore-checks', 'W3005', '--', file], { encoding: 'utf-8' });
    expect(run.error).toBeUndefined();
    expect(run.stdout + run.stderr).toBe('');
    expect(run.status).toBe(0);
  });
});
