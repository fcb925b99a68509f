import { Duration, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { CountAlarmOptions } from './alarm-options';
import { alarmOnce, checkThreshold } from './private/alarms';
import { num } from './private/errors';
import { WarmWebFunction } from './warm-web-function';
import { WebCommand } from './web-command';

/** Properties of a `WebCommandSchedule`. */
export interface WebCommandScheduleProps {
  /** The function whose `live` alias runs the command. */
  readonly function: WarmWebFunction;

  /** The command to run, e.g. `WebCommand.django('clearsessions')`. */
  readonly command: WebCommand;

  /**
   * When to run it, e.g. `scheduler.ScheduleExpression.cron({ hour: '3', minute: '0', timeZone: TimeZone.EUROPE_BERLIN })`.
   */
  readonly schedule: scheduler.ScheduleExpression;

  /**
   * How often EventBridge Scheduler retries delivering the command when the invoke is not accepted
   * (throttled, or a Lambda service error). A command that ran and exited non-zero is not retried: its
   * exit status is an answer, counted by `metricFailures()`.
   *
   * @default 2
   */
  readonly retryAttempts?: number;

  /**
   * How long an undelivered command may still be delivered, from its scheduled time (1 minute to 24 hours).
   *
   * @default Duration.hours(1)
   */
  readonly maxEventAge?: Duration;

  /**
   * Where a command goes that could not be delivered within `retryAttempts` and `maxEventAge`.
   *
   * @default - none: undelivered commands are dropped and counted in the schedule group's
   * `AWS/Scheduler` `TargetErrorCount` metric
   */
  readonly deadLetterQueue?: sqs.IQueue;

  /**
   * Whether the schedule runs.
   *
   * @default true
   */
  readonly enabled?: boolean;
}

/**
 * A command run inside a `WarmWebFunction` on a schedule: a Django management command
 * (`clearsessions` daily), a Flask CLI command or a function of the app.
 *
 * An EventBridge Scheduler schedule sends the command event (`WebCommand.toEvent()`) to the function's
 * `live` alias, the same path as `npx cdk-warm-web manage`; its role may invoke that alias and nothing
 * else. The shim runs the command with the invoke's time as its bound and logs its output; a non-zero
 * exit counts in the `CommandFailures` metric (`metricFailures()`, `addFailureAlarm()`).
 */
export class WebCommandSchedule extends Construct {
  /** The EventBridge Scheduler schedule. */
  public readonly schedule: scheduler.Schedule;

  /** The role EventBridge Scheduler invokes the alias with. */
  public readonly role: iam.IRole;

  /** The command the schedule runs. */
  public readonly command: WebCommand;

  private readonly webFunction: WarmWebFunction;

  constructor(scope: Construct, id: string, props: WebCommandScheduleProps) {
    super(scope, id);
    const where = `WebCommandSchedule ${this.node.path}`;
    const { retryAttempts = 2, maxEventAge = Duration.hours(1) } = props;
    if (!Token.isUnresolved(retryAttempts) && (!Number.isInteger(retryAttempts) || retryAttempts < 0 || retryAttempts > 185)) {
      throw new Error(`${where}: retryAttempts must be an integer from 0 to 185, got ${retryAttempts}`);
    }
    if (!maxEventAge.isUnresolved()) {
      const seconds = maxEventAge.toSeconds();
      if (seconds < 60 || seconds > 86_400) {
        throw new Error(`${where}: maxEventAge must be from 1 minute to 24 hours, got ${maxEventAge.toHumanString()}`);
      }
    }
    const family = props.function.lambdaFunction.runtime.family;
    if (family === lambda.RuntimeFamily.NODEJS && props.command.kind !== 'function') {
      throw new Error(`${where}: command '${props.command}' is a ${props.command.kind} command, and ${props.function.node.path} runs Node: use WebCommand.function('path/module.export')`);
    }
    if (props.command.kind === 'function') {
      const python = props.command.target!.includes(':');
      if ((family === lambda.RuntimeFamily.NODEJS && python) || (family === lambda.RuntimeFamily.PYTHON && !python)) {
        throw new Error(`${where}: command target '${props.command.target}' is not a ${family === lambda.RuntimeFamily.NODEJS ? 'path/module.export (Node)' : 'module:function (Python)'} target, and ${props.function.node.path} runs ${family === lambda.RuntimeFamily.NODEJS ? 'Node' : 'Python'}`);
      }
    }

    this.command = props.command;
    this.webFunction = props.function;
    const alias = props.function.alias;
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com'),
      description: `Runs '${props.command}' on ${alias.node.path}`,
    });
    // The alias only: not the function's other versions, not $LATEST.
    role.addToPolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [alias.functionArn] }));
    this.role = role;
    this.schedule = new scheduler.Schedule(this, 'Resource', {
      schedule: props.schedule,
      description: `Runs '${props.command}' on ${alias.node.path}`,
      enabled: props.enabled ?? true,
      target: new targets.LambdaInvoke(alias, {
        role,
        input: scheduler.ScheduleTargetInput.fromObject(props.command.toEvent()),
        retryAttempts,
        maxEventAge,
        deadLetterQueue: props.deadLetterQueue,
      }),
    });
  }

  /**
   * Commands of this kind (`django`, `flask` or `function`) that exited non-zero on the function,
   * emitted by the runtime shim. It counts every such command the function ran, `manage` runs included.
   *
   * @default - sum over 5 minutes
   */
  public metricFailures(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'WarmWeb',
      metricName: 'CommandFailures',
      dimensionsMap: { FunctionName: this.webFunction.lambdaFunction.functionName, CommandKind: this.command.kind },
      statistic: 'Sum',
      ...props,
    });
  }

  /**
   * An alarm that fires when commands of this kind exited non-zero (a scheduled command's failure is
   * an answer, not a Lambda error, so the function's Errors metric does not see it): by default at least
   * 1 in a five-minute period. Called again with the same options, it returns the same alarm.
   */
  public addFailureAlarm(options: CountAlarmOptions = {}): cloudwatch.Alarm {
    const method = 'addFailureAlarm';
    const threshold = checkThreshold(this, method, options.threshold ?? 1, (v) => v >= 1, 'is a count >= 1');
    return alarmOnce(this, {
      method,
      id: 'FailureAlarm',
      metric: this.metricFailures({ period: Duration.minutes(5) }),
      description: `A ${this.command.kind} command exited non-zero on ${this.webFunction.node.path} (scheduled: '${this.command}')`,
      threshold,
      shownThreshold: num(threshold),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: options.evaluationPeriods ?? 1,
      datapointsToAlarm: options.datapointsToAlarm,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }
}
