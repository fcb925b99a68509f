import { Duration } from 'aws-cdk-lib';

/**
 * When an alarm fires, whatever its threshold: the shape every alarm option shares.
 */
export interface AlarmOptions {
  /**
   * Periods the alarm looks at.
   *
   * @default - the alarm's own (see its helper)
   */
  readonly evaluationPeriods?: number;

  /**
   * Periods out of `evaluationPeriods` that must breach.
   *
   * @default - the alarm's own (see its helper); most need all periods
   */
  readonly datapointsToAlarm?: number;
}

/**
 * An alarm on a count (cold starts, throttles, pinned connections).
 */
export interface CountAlarmOptions extends AlarmOptions {
  /**
   * The count, per period.
   *
   * @default - the alarm's own (see its helper)
   */
  readonly threshold?: number;
}

/**
 * An alarm on a percentage, 0–100 (error rate, hit rate, pool in use).
 */
export interface PercentAlarmOptions extends AlarmOptions {
  /**
   * The percentage.
   *
   * @default - the alarm's own (see its helper)
   */
  readonly threshold?: number;
}

/**
 * An alarm on a ratio, 0–1 (warm coverage, provisioned utilization).
 */
export interface RatioAlarmOptions extends AlarmOptions {
  /**
   * The ratio.
   *
   * @default - the alarm's own (see its helper)
   */
  readonly threshold?: number;
}

/**
 * An alarm on a duration (p99 duration, INIT, replica lag).
 */
export interface DurationAlarmOptions extends AlarmOptions {
  /**
   * The duration.
   *
   * @default - the alarm's own (see its helper)
   */
  readonly threshold?: Duration;
}
