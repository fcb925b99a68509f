import * as path from 'path';
import { CustomResource, Duration, Stack, Token, Tokenization, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import { Construct } from 'constructs';
import { propError } from './private/errors';
import { functionRoleAndLogs } from './private/function-role';

const MAX_CONCURRENCY = 1000;
/**
 * The warmer function's timeout. A run's rounds end 5 s before it (the warmer reads its remaining time),
 * so that it always emits its metrics and answers CloudFormation: handlers/warmer FUNCTION_TIMEOUT_MS.
 */
const WARMER_TIMEOUT = Duration.minutes(2);
/**
 * How long CloudFormation waits for a pre-warm's answer: the warmer answers within its timeout; if it is
 * killed (out of memory), Lambda retries the invoke after about a minute, and that run answers too.
 */
const PREWARM_SERVICE_TIMEOUT = Duration.seconds(2 * WARMER_TIMEOUT.toSeconds() + 60);

/** Each cron field: its values, the names it takes, and the wildcards EventBridge Scheduler allows in it. */
const CRON_FIELDS: Record<CronField, { min: number; max: number; wildcards: string; names?: readonly string[] }> = {
  minute: { min: 0, max: 59, wildcards: ', - * /' },
  hour: { min: 0, max: 23, wildcards: ', - * /' },
  day: { min: 1, max: 31, wildcards: ', - * ? / L W' },
  month: { min: 1, max: 12, wildcards: ', - * /', names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'] },
  weekDay: { min: 1, max: 7, wildcards: ', - * ? L #', names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] },
  year: { min: 1970, max: 2199, wildcards: ', - * /' },
};

type CronField = 'minute' | 'hour' | 'day' | 'month' | 'weekDay' | 'year';

/** Whether `text` is one value of the field: a number in its range or one of its names. */
function cronValue(field: CronField, text: string): boolean {
  const spec = CRON_FIELDS[field];
  if (spec.names?.includes(text.toUpperCase())) return true;
  return /^\d+$/.test(text) && Number(text) >= spec.min && Number(text) <= spec.max;
}

/**
 * Whether a cron field is one EventBridge Scheduler accepts: `*`, `?` (day and weekDay), or a list of
 * values, ranges `a-b` and steps `a/n`, `a-b/n`, `*\/n` (not in weekDay); `L`, `LW` and `15W` in day;
 * `L`, `5L` and `6#3` (alone) in weekDay.
 */
function cronFieldValid(field: CronField, text: string): boolean {
  const spec = CRON_FIELDS[field];
  if (text === '*' || (text === '?' && spec.wildcards.includes('?'))) return true;
  if (field === 'day' && /^(L|LW|\d+W)$/i.test(text)) return /^L/i.test(text) || cronValue(field, text.slice(0, -1));
  if (field === 'weekDay' && /^\w+#\d$/.test(text)) {
    const [day, nth] = text.split('#');
    return cronValue(field, day) && Number(nth) >= 1 && Number(nth) <= 5;
  }
  if (field === 'weekDay' && /^(L|\w+L)$/i.test(text)) return text.length === 1 || cronValue(field, text.slice(0, -1));
  return text.split(',').every((item) => {
    const [range, step, ...rest] = item.split('/');
    if (rest.length > 0 || (step !== undefined && !spec.wildcards.includes('/'))) return false;
    if (step !== undefined && !(/^\d+$/.test(step) && Number(step) >= 1 && Number(step) <= spec.max)) return false;
    if (range === '*') return step !== undefined;
    const bounds = range.split('-');
    return bounds.length <= 2 && bounds.every((b) => cronValue(field, b));
  });
}

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
   * `minute` is required (`'*'` for every minute); each field is checked against EventBridge Scheduler's
   * cron syntax, tokens excepted.
   */
  public static cron(options: WarmCronOptions): WarmSchedule {
    const { concurrency, ...cron } = options;
    if (cron.minute === undefined) {
      throw new Error('WarmSchedule.cron: give minute, e.g. \'0/5\' for every 5 minutes: without it the schedule warms every '
        + 'minute, 5 times the runs (and pings) of the default; write minute: \'*\' if that is meant');
    }
    for (const field of Object.keys(CRON_FIELDS) as CronField[]) {
      const value = cron[field];
      if (value === undefined || Token.isUnresolved(value)) continue;
      if (!cronFieldValid(field, value)) {
        const { min, max, wildcards } = CRON_FIELDS[field];
        throw new Error(`WarmSchedule.cron: ${field} must be an EventBridge Scheduler cron field (values ${min}-${max}, `
          + `wildcards ${wildcards}), got '${value}'`);
      }
    }
    if (cron.day === '?' && cron.weekDay === undefined) {
      throw new Error('WarmSchedule.cron: day \'?\' needs a weekDay (one of day and weekDay must be \'?\', not both), got day \'?\' alone');
    }
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
   * Distinct environments to keep warm on the default schedule (every 5 minutes). Give either this or
   * `schedules` (each schedule has its own concurrency), not both.
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
 * distinct environment ids that answer, tops up when fewer than N answered (not when a ping was throttled,
 * and only while the run's time allows), and publishes `WarmCoverage`, `DistinctEnvironmentsWarmed`,
 * `ColdStartsDuringWarm`, `WarmRoundDurationMs`, `WarmPingErrors` and `WarmPingThrottles` (namespace
 * `WarmWeb`).
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
      // Three rounds, each up to a 10 s hold plus a cold target's INIT; the rounds share it, less the
      // time kept to answer.
      timeout: WARMER_TIMEOUT,
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
    // The errors name the warmed function (the alias's parent), whose `warming` is wrong.
    const owner = alias.node.scope ?? alias;
    if (!holdTime.isUnresolved() && (holdTime.toMilliseconds() < 10 || holdTime.toMilliseconds() > 10_000)) {
      throw propError(owner, `warming.holdTime must be between 10 milliseconds and 10 seconds, got ${holdTime.toHumanString()}`);
    }
    if (options.schedules && options.concurrency !== undefined) {
      throw propError(owner, 'warming: give either concurrency (for the default schedule) or schedules (each with its concurrency), not both');
    }
    if (options.schedules?.length === 0) {
      throw propError(owner, 'warming.schedules must not be empty; omit it for the default schedule');
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
        // A number token would show as a huge negative number in a string, not as its reference.
        description: `Warm ${Tokenization.stringifyNumber(schedule.concurrency)} environments of ${alias.node.path}`,
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
      // The largest scheduled concurrency; with a token among them (which Math.max would take for a huge
      // negative number), all of them, and the warmer takes the largest at deploy time.
      const concurrencies = schedules.map((s) => s.concurrency);
      const concurrency = concurrencies.some((c) => Token.isUnresolved(c)) && concurrencies.length > 1 ? concurrencies : Math.max(...concurrencies);
      const prewarm = new CustomResource(target, 'Prewarm', {
        serviceToken: this.lambdaFunction.functionArn,
        resourceType: 'Custom::WarmWebPrewarm',
        // Not CloudFormation's default of an hour for a warmer that never answered.
        serviceTimeout: PREWARM_SERVICE_TIMEOUT,
        properties: {
          Targets: [{ functionArn: alias.functionArn, concurrency, holdMs }],
          // A new version is a new warm-up; config-only changes of the warmer are not.
          Version: alias.version.version,
        },
      });
      prewarm.node.addDependency(this.invokePolicy);
    }
  }
}
