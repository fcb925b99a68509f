import * as path from 'path';
import { CustomResource, Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import { Construct } from 'constructs';
import { functionRoleAndLogs } from './private/function-role';

const MAX_CONCURRENCY = 1000;

/**
 * Options for a cron warm schedule.
 */
export interface WarmCronOptions extends scheduler.CronOptionsWithTimezone {
  /** Distinct environments to keep warm while this schedule fires. */
  readonly concurrency: number;
}

/**
 * When to warm, and how many environments.
 */
export class WarmSchedule {
  /**
   * Warm `concurrency` environments every `interval` (at least one minute).
   */
  public static every(interval: Duration, concurrency: number): WarmSchedule {
    if (!interval.isUnresolved() && interval.toSeconds() < 60) {
      throw new Error(`WarmSchedule.every: interval must be at least 1 minute, got ${interval.toHumanString()}`);
    }
    return new WarmSchedule(scheduler.ScheduleExpression.rate(interval), concurrency, `every ${interval.toHumanString()}`);
  }

  /**
   * Warm on a cron schedule in a time zone, e.g. every 5 minutes on weekdays 08:00–19:55 in Berlin:
   * `{ minute: '0/5', hour: '8-19', weekDay: 'MON-FRI', timeZone: TimeZone.EUROPE_BERLIN, concurrency: 20 }`.
   */
  public static cron(options: WarmCronOptions): WarmSchedule {
    const { concurrency, ...cron } = options;
    return new WarmSchedule(scheduler.ScheduleExpression.cron(cron), concurrency, 'cron');
  }

  /** The EventBridge Scheduler expression. */
  public readonly expression: scheduler.ScheduleExpression;

  /** Distinct environments to keep warm. */
  public readonly concurrency: number;

  private constructor(expression: scheduler.ScheduleExpression, concurrency: number, label: string) {
    if (!Token.isUnresolved(concurrency) && (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY)) {
      throw new Error(`WarmSchedule (${label}): concurrency must be an integer from 1 to ${MAX_CONCURRENCY}, got ${concurrency}`);
    }
    this.expression = expression;
    this.concurrency = concurrency;
  }
}

/**
 * How a function is kept warm.
 */
export interface WarmingOptions {
  /**
   * Distinct environments to keep warm on the default schedule (every 5 minutes). Ignored when
   * `schedules` is given.
   *
   * @default 1
   */
  readonly concurrency?: number;

  /**
   * When to warm and how many environments, e.g. 20 on weekday business hours and 2 otherwise.
   *
   * @default - [WarmSchedule.every(Duration.minutes(5), concurrency)]
   */
  readonly schedules?: WarmSchedule[];

  /**
   * How long every ping holds until the warmer has seen a warm round of the target, so that all pings of
   * a round overlap. From then on each ping's hold is learned from how the pings arrived (within 10 s).
   *
   * @default Duration.millis(250)
   */
  readonly holdTime?: Duration;

  /**
   * Warm each newly published version right after deployment, at the largest scheduled concurrency.
   *
   * @default true
   */
  readonly prewarmOnDeploy?: boolean;
}

/**
 * The stack's warmer: one function that keeps the `live` alias of every warmed function at N distinct
 * warm environments, and proves it.
 *
 * Each run sends N concurrent pings that each hold until the last of them has arrived, counts the
 * distinct environment ids that answer, tops up when fewer than N answered, and publishes `WarmCoverage`,
 * `DistinctEnvironmentsWarmed`, `ColdStartsDuringWarm` and `WarmRoundDurationMs` (namespace `WarmWeb`).
 * Use `Warmer.of(scope)`; `WarmWebFunction` does it for you when given `warming`.
 */
export class Warmer extends Construct {
  /**
   * The warmer of the stack that `scope` is in, created on first use.
   */
  public static of(scope: Construct): Warmer {
    const stack = Stack.of(scope);
    return (stack.node.tryFindChild(Warmer.ID) as Warmer | undefined) ?? new Warmer(stack, Warmer.ID);
  }

  private static readonly ID = 'WarmWebWarmer';

  /** The warmer function. */
  public readonly lambdaFunction: lambda.Function;

  private readonly invokePolicy: iam.Policy;
  private readonly schedulerRole: iam.Role;

  private constructor(scope: Construct, id: string) {
    super(scope, id);
    const { role, logGroup } = functionRoleAndLogs(this, { role: 'ServiceRole', logGroup: 'LogGroup' }, {
      description: 'cdk-warm-web warmer: invokes only the live aliases it warms',
    });
    this.invokePolicy = new iam.Policy(this, 'InvokeAliases', { roles: [role] });
    this.lambdaFunction = new lambda.Function(this, 'Resource', {
      description: 'cdk-warm-web warmer: keeps N distinct environments of each live alias warm',
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(path.join(__dirname, '..', 'assets', 'warmer')),
      // One vCPU (Lambda's CPU share grows with memory up to 1,769 MB): the warmer's CPU sets how fast its
      // N pings go out, and every ping holds until the last one arrives (npm run bench:warmer-cpu).
      memorySize: 1769,
      // Three rounds, each up to a 10 s hold plus a cold target's INIT.
      timeout: Duration.minutes(2),
      role,
      logGroup,
    });
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com'),
      description: 'cdk-warm-web warmer schedules: invoke the warmer function',
    });
    const functionLogicalId = Stack.of(this).resolve((this.lambdaFunction.node.defaultChild as lambda.CfnFunction).logicalId);
    Validations.of(this.schedulerRole).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${functionLogicalId}.Arn>:*]`,
      reason: 'The only wildcard is `<warmer function ARN>:*` (its versions), added by aws-cdk-lib\'s LambdaInvoke '
        + 'schedule target; the role can invoke the warmer function and nothing else.',
    });
  }

  /**
   * Keeps an alias warm.
   *
   * @param id a construct id for the schedules and pre-warm of this target, unique in the warmer
   * @param alias the alias to warm; only aliases may be warmed, never `$LATEST`
   * @param options concurrency, schedules, hold and pre-warm
   */
  public addTarget(id: string, alias: lambda.Alias, options: WarmingOptions = {}): void {
    const holdTime = options.holdTime ?? Duration.millis(250);
    if (!holdTime.isUnresolved() && (holdTime.toMilliseconds() < 10 || holdTime.toMilliseconds() > 10_000)) {
      throw new Error(`warming.holdTime must be between 10 milliseconds and 10 seconds, got ${holdTime.toHumanString()}`);
    }
    if (options.schedules && options.concurrency !== undefined) {
      throw new Error('warming: give either concurrency (for the default schedule) or schedules (each with its concurrency), not both');
    }
    if (options.schedules?.length === 0) {
      throw new Error('warming.schedules must not be empty; omit it for the default schedule');
    }
    const schedules = options.schedules ?? [WarmSchedule.every(Duration.minutes(5), options.concurrency ?? 1)];
    const holdMs = holdTime.toMilliseconds();
    const target = new Construct(this, id);

    this.invokePolicy.addStatements(new iam.PolicyStatement({
      actions: ['lambda:InvokeFunction'],
      resources: [alias.functionArn],
    }));

    schedules.forEach((schedule, i) => {
      new scheduler.Schedule(target, `Schedule${i}`, {
        schedule: schedule.expression,
        description: `Warm ${schedule.concurrency} environments of ${alias.node.path}`,
        target: new targets.LambdaInvoke(this.lambdaFunction, {
          role: this.schedulerRole,
          input: scheduler.ScheduleTargetInput.fromObject({
            targets: [{ functionArn: alias.functionArn, concurrency: schedule.concurrency, holdMs }],
          }),
          // A late retry of a warm-up only costs money; the next schedule comes soon.
          retryAttempts: 0,
        }),
      });
    });

    if (options.prewarmOnDeploy ?? true) {
      const prewarm = new CustomResource(target, 'Prewarm', {
        serviceToken: this.lambdaFunction.functionArn,
        resourceType: 'Custom::WarmWebPrewarm',
        properties: {
          Targets: [{ functionArn: alias.functionArn, concurrency: Math.max(...schedules.map((s) => s.concurrency)), holdMs }],
          // A new version is a new warm-up; config-only changes of the warmer are not.
          Version: alias.version.version,
        },
      });
      prewarm.node.addDependency(this.invokePolicy);
    }
  }
}
