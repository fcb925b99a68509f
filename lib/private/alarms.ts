import { Duration, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { num, propError } from './errors';

/** One alarm of a construct, as an alarm helper resolved it from its options and defaults. */
export interface AlarmSpec {
  /** The helper, for messages (`addHitRateAlarm`). */
  readonly method: string;
  /** The alarm's construct id under the scope (public: it sets the logical ID). */
  readonly id: string;
  readonly metric: cloudwatch.IMetric;
  /** The threshold in the metric's unit. */
  readonly threshold: number;
  /** The threshold as the user gave it, for messages (`5 seconds`, `90`). */
  readonly shownThreshold: string;
  readonly comparisonOperator: cloudwatch.ComparisonOperator;
  readonly evaluationPeriods: number;
  readonly datapointsToAlarm?: number;
  readonly treatMissingData: cloudwatch.TreatMissingData;
  readonly description: string;
}

const settings = new WeakMap<cloudwatch.Alarm, Array<[string, string]>>();

/**
 * Makes an alarm helper idempotent: the first call creates the alarm under `spec.id`, a later call
 * with the same settings returns that alarm, and one with other settings is refused (a construct has
 * one alarm of each kind, under an id that is public).
 */
export function alarmOnce(scope: Construct, spec: AlarmSpec): cloudwatch.Alarm {
  checkPeriods(scope, spec);
  const wanted: Array<[string, string]> = [
    ['threshold', spec.shownThreshold],
    ['evaluationPeriods', num(spec.evaluationPeriods)],
    ['datapointsToAlarm', spec.datapointsToAlarm === undefined ? 'all periods' : num(spec.datapointsToAlarm)],
  ];
  const existing = scope.node.tryFindChild(spec.id);
  if (existing instanceof cloudwatch.Alarm && settings.has(existing)) {
    const before = settings.get(existing)!;
    const differs = wanted.find(([name, value], i) => before[i][0] === name && before[i][1] !== value);
    if (differs) {
      const [name, value] = differs;
      const old = before.find(([n]) => n === name)![1];
      throw new Error(`${spec.method}: ${scope.node.path} already has this alarm, with ${name} ${old}; got ${value}`);
    }
    return existing;
  }
  const alarm = new cloudwatch.Alarm(scope, spec.id, {
    metric: spec.metric,
    alarmDescription: spec.description,
    threshold: spec.threshold,
    comparisonOperator: spec.comparisonOperator,
    evaluationPeriods: spec.evaluationPeriods,
    datapointsToAlarm: spec.datapointsToAlarm,
    treatMissingData: spec.treatMissingData,
  });
  settings.set(alarm, wanted);
  return alarm;
}

function checkPeriods(scope: Construct, spec: AlarmSpec) {
  const { evaluationPeriods: periods, datapointsToAlarm: points } = spec;
  if (!Token.isUnresolved(periods) && (!Number.isInteger(periods) || periods < 1)) {
    throw propError(scope, `${spec.method}: evaluationPeriods must be an integer >= 1, got ${periods}`);
  }
  if (points !== undefined && !Token.isUnresolved(points) && (!Number.isInteger(points) || points < 1
    || (!Token.isUnresolved(periods) && points > periods))) {
    throw propError(scope, `${spec.method}: datapointsToAlarm must be an integer from 1 to evaluationPeriods (${num(periods)}), got ${points}`);
  }
}

/**
 * Checks a numeric threshold against its range (tokens pass) and returns it with its text for messages.
 *
 * @param rule what the threshold must be, e.g. 'is a percentage above 0 and at most 100'
 */
export function checkThreshold(scope: Construct, method: string, value: number, ok: (v: number) => boolean, rule: string): number {
  if (!Token.isUnresolved(value) && !(Number.isFinite(value) && ok(value))) {
    throw propError(scope, `${method}: threshold ${rule}, got ${value}`);
  }
  return value;
}

/** A duration threshold in the metric's unit, and its text; tokens pass through as tokens. */
export function durationIn(threshold: Duration, unit: 'ms' | 's'): { value: number; shown: string } {
  const value = unit === 'ms' ? threshold.toMilliseconds() : threshold.toSeconds();
  return { value, shown: threshold.isUnresolved() ? num(value) : threshold.toHumanString() };
}
