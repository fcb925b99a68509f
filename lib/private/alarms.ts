import { Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';

const thresholds = new WeakMap<cloudwatch.Alarm, number>();

function shown(threshold: number): string {
  return Token.isUnresolved(threshold) ? 'a token' : String(threshold);
}

/**
 * Makes an alarm helper idempotent: the first call creates the alarm under `id`, a later call with the
 * same threshold returns that alarm, and one with another threshold is refused (a construct has one
 * alarm of each kind, under an id that is public).
 */
export function alarmOnce(scope: Construct, id: string, method: string, threshold: number, create: () => cloudwatch.Alarm): cloudwatch.Alarm {
  const existing = scope.node.tryFindChild(id);
  if (existing instanceof cloudwatch.Alarm && thresholds.has(existing)) {
    const before = thresholds.get(existing)!;
    if (before !== threshold) {
      throw new Error(`${method}: ${scope.node.path} already has this alarm, with threshold ${shown(before)}; got ${shown(threshold)}`);
    }
    return existing;
  }
  const alarm = create();
  thresholds.set(alarm, threshold);
  return alarm;
}
