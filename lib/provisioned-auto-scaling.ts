import { Duration, Stack, Token } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { Construct } from 'constructs';
import { CountAlarmOptions, RatioAlarmOptions } from './alarm-options';
import { alarmOnce, checkThreshold } from './private/alarms';
import { num, propError } from './private/errors';

/**
 * The statistic target tracking follows.
 */
export enum UtilizationStatistic {
  /** The AWS default: the average over the minute hides short bursts. */
  AVERAGE = 'Average',
  /** The busiest moment of the minute: scales out on bursts that the average smooths away. */
  MAXIMUM = 'Maximum',
}

/**
 * Options for a scheduled capacity change.
 */
export interface CapacityCronOptions extends scheduler.CronOptionsWithTimezone {
  /**
   * The minimum capacity from this time on.
   *
   * @default - unchanged
   */
  readonly minCapacity?: number;

  /**
   * The maximum capacity from this time on.
   *
   * @default - unchanged
   */
  readonly maxCapacity?: number;
}

/**
 * A scheduled change of the provisioned concurrency range. Its cron fields are the warmer's
 * (`WarmSchedule.cron`), so one calendar can drive both: see `WarmCalendar`.
 */
export class CapacitySchedule {
  /**
   * Change min and/or max capacity at the times of a cron expression, in a time zone.
   */
  public static cron(options: CapacityCronOptions): CapacitySchedule {
    if (options.minCapacity === undefined && options.maxCapacity === undefined) {
      throw new Error('CapacitySchedule.cron: give minCapacity, maxCapacity or both');
    }
    return new CapacitySchedule(options);
  }

  private constructor(public readonly options: CapacityCronOptions) {}
}

/**
 * Provisioned concurrency on the `live` alias, scaled by Application Auto Scaling.
 */
export interface ProvisionedConcurrencyOptions {
  /** Environments kept initialised at all times (outside schedules). */
  readonly minCapacity: number;

  /** The most environments auto scaling may provision. */
  readonly maxCapacity: number;

  /**
   * Target utilization of the provisioned environments, 0.1–0.9.
   *
   * @default 0.7
   */
  readonly utilizationTarget?: number;

  /**
   * The statistic of `ProvisionedConcurrencyUtilization` that target tracking follows.
   *
   * @default UtilizationStatistic.MAXIMUM
   */
  readonly statistic?: UtilizationStatistic;

  /**
   * How long after a scale-in before another.
   *
   * @default - Application Auto Scaling's default
   */
  readonly scaleInCooldown?: Duration;

  /**
   * How long after a scale-out before another.
   *
   * @default - Application Auto Scaling's default
   */
  readonly scaleOutCooldown?: Duration;

  /**
   * Scheduled changes of the range, e.g. `WarmCalendar.capacitySchedules()`.
   *
   * @default - none
   */
  readonly schedules?: CapacitySchedule[];
}

/**
 * Properties of `ProvisionedAutoScaling`.
 */
export interface ProvisionedAutoScalingProps extends ProvisionedConcurrencyOptions {
  /** The alias to provision: it must point at a published version. */
  readonly alias: lambda.Alias;
}

/**
 * Provisioned concurrency on an alias with target tracking (Average or Maximum), scheduled actions
 * and alarm helpers. Because the cdk-warm-web shim boots the app during INIT, provisioned
 * environments serve their first request with the app already loaded.
 */
export class ProvisionedAutoScaling extends Construct {
  /** The Application Auto Scaling target. */
  public readonly scalableTarget: appscaling.ScalableTarget;

  private readonly alias: lambda.Alias;

  constructor(scope: Construct, id: string, props: ProvisionedAutoScalingProps) {
    super(scope, id);
    const target = props.utilizationTarget ?? 0.7;
    validate(this, props, target);
    this.alias = props.alias;

    this.scalableTarget = new appscaling.ScalableTarget(this, 'Target', {
      serviceNamespace: appscaling.ServiceNamespace.LAMBDA,
      scalableDimension: 'lambda:function:ProvisionedConcurrency',
      resourceId: `function:${props.alias.lambda.functionName}:${props.alias.aliasName}`,
      minCapacity: props.minCapacity,
      maxCapacity: props.maxCapacity,
    });
    // The version must exist, with its provisioned concurrency, before auto scaling registers it.
    this.scalableTarget.node.addDependency(props.alias);

    this.scalableTarget.scaleToTrackMetric('Utilization', {
      targetValue: target,
      customMetric: this.metricUtilization({ statistic: props.statistic ?? UtilizationStatistic.MAXIMUM, period: Duration.minutes(1) }),
      scaleInCooldown: props.scaleInCooldown,
      scaleOutCooldown: props.scaleOutCooldown,
    });

    (props.schedules ?? []).forEach((schedule, i) => {
      const { minCapacity, maxCapacity, timeZone, ...cron } = schedule.options;
      this.scalableTarget.scaleOnSchedule(`Schedule${i}`, {
        schedule: appscaling.Schedule.cron(cron),
        timeZone,
        minCapacity,
        maxCapacity,
      });
    });
  }

  /**
   * `ProvisionedConcurrencyUtilization` of the alias: share of provisioned environments in use.
   *
   * @default - maximum over 1 minute
   */
  public metricUtilization(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.aliasMetric('ProvisionedConcurrencyUtilization', { statistic: 'Maximum', period: Duration.minutes(1), ...props });
  }

  /**
   * `ProvisionedConcurrencySpilloverInvocations`: requests that found no provisioned environment
   * free and went to an on-demand one (a possible cold start).
   *
   * @default - sum over 5 minutes
   */
  public metricSpilloverInvocations(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.aliasMetric('ProvisionedConcurrencySpilloverInvocations', { statistic: 'Sum', ...props });
  }

  /**
   * Alarms when more than `threshold` (default 0: any) requests per five minutes spill over to on-demand
   * environments, in 1 period. Called again with the same options, it returns the same alarm.
   */
  public addSpilloverAlarm(options: CountAlarmOptions = {}): cloudwatch.Alarm {
    const method = 'addSpilloverAlarm';
    const threshold = checkThreshold(this, method, options.threshold ?? 0, (v) => v >= 0, 'is a count >= 0');
    return alarmOnce(this, {
      method,
      id: 'SpilloverAlarm',
      metric: this.metricSpilloverInvocations({ period: Duration.minutes(5) }),
      description: options.threshold === undefined
        ? `Requests to ${this.alias.node.path} spilled over provisioned concurrency`
        : `More than ${num(threshold)} requests to ${this.alias.node.path} per 5 minutes spilled over provisioned concurrency`,
      threshold,
      shownThreshold: num(threshold),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: options.evaluationPeriods ?? 1,
      datapointsToAlarm: options.datapointsToAlarm,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  /**
   * Alarms when provisioned environments are nearly all busy: maximum utilization at least `threshold`
   * (0–1, default 0.9) for 3 of 3 minutes, so auto scaling is at its limit or too slow. Called again with
   * the same options, it returns the same alarm.
   */
  public addUtilizationAlarm(options: RatioAlarmOptions = {}): cloudwatch.Alarm {
    const method = 'addUtilizationAlarm';
    const threshold = checkThreshold(this, method, options.threshold ?? 0.9, (v) => v > 0 && v <= 1, 'must be in (0, 1]');
    return alarmOnce(this, {
      method,
      id: 'UtilizationAlarm',
      metric: this.metricUtilization(),
      description: `Provisioned concurrency of ${this.alias.node.path} is nearly exhausted`,
      threshold,
      shownThreshold: num(threshold),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: options.evaluationPeriods ?? 3,
      datapointsToAlarm: options.datapointsToAlarm,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  private aliasMetric(metricName: string, props: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'AWS/Lambda',
      metricName,
      dimensionsMap: {
        FunctionName: this.alias.lambda.functionName,
        Resource: `${this.alias.lambda.functionName}:${this.alias.aliasName}`,
      },
      region: Stack.of(this).region,
      ...props,
    });
  }
}

function validate(scope: Construct, props: ProvisionedAutoScalingProps, target: number) {
  const { minCapacity, maxCapacity } = props;
  if (props.alias.version.version === '$LATEST') {
    throw propError(scope, `provisioned concurrency needs a published version; alias ${props.alias.aliasName} points at $LATEST`);
  }
  if (!Token.isUnresolved(minCapacity) && (!Number.isInteger(minCapacity) || minCapacity < 0)) {
    throw propError(scope, `provisionedConcurrency.minCapacity must be an integer >= 0, got ${minCapacity}`);
  }
  if (!Token.isUnresolved(maxCapacity) && (!Number.isInteger(maxCapacity) || maxCapacity < 1)) {
    throw propError(scope, `provisionedConcurrency.maxCapacity must be an integer >= 1, got ${maxCapacity}`);
  }
  if (!Token.isUnresolved(minCapacity) && !Token.isUnresolved(maxCapacity) && maxCapacity < minCapacity) {
    throw propError(scope, `provisionedConcurrency.maxCapacity (${maxCapacity}) is less than minCapacity (${minCapacity})`);
  }
  if (!Token.isUnresolved(target) && (target < 0.1 || target > 0.9)) {
    throw propError(scope, `provisionedConcurrency.utilizationTarget must be between 0.1 and 0.9, got ${target}`);
  }
  (props.schedules ?? []).forEach((schedule, i) => {
    const min = schedule.options.minCapacity ?? minCapacity;
    const max = schedule.options.maxCapacity ?? maxCapacity;
    if (!Token.isUnresolved(min) && !Token.isUnresolved(max) && max < min) {
      throw propError(scope, `provisionedConcurrency.schedules[${i}] would set maxCapacity ${max} below minCapacity ${min}`);
    }
  });
  checkScheduleTimes(scope, props.schedules ?? []);
}

/** Two schedules firing at the same time must agree, or which one wins is up to chance. */
function checkScheduleTimes(scope: Construct, schedules: CapacitySchedule[]) {
  const seen = new Map<string, number>();
  schedules.forEach((schedule, i) => {
    const { minCapacity, maxCapacity, timeZone, ...cron } = schedule.options;
    const key = JSON.stringify({ cron, timeZone: timeZone?.timezoneName });
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      const other = schedules[earlier].options;
      if (other.minCapacity !== minCapacity || other.maxCapacity !== maxCapacity) {
        throw propError(scope, `provisionedConcurrency.schedules[${earlier}] and schedules[${i}] fire at the same time with different capacities`);
      }
    }
    seen.set(key, i);
  });
}
