/**
 * Monthly cost of keeping environments ready, by strategy, from AWS's published us-east-1 prices.
 * One table, one formula per strategy; docs/STRATEGIES.md explains them.
 */

/**
 * us-east-1 prices (USD). Sources: aws.amazon.com/lambda/pricing (requests, duration, provisioned
 * concurrency, SnapStart for Python) and aws.amazon.com/eventbridge/pricing (Scheduler), as collected in
 * the project's research notes (perf_numbers.md §4), checked 2026.
 */
export const PRICES = {
  requestPerMillion: 0.2,
  /** On-demand duration per GB-second (first tier). */
  durationPerGbSecond: { x86_64: 0.0000166667, arm64: 0.0000133334 },
  /** Provisioned concurrency per GB-second configured, whether used or not. */
  provisionedPerGbSecond: { x86_64: 0.0000041667, arm64: 0.0000033334 },
  /** Duration while serving on provisioned concurrency, per GB-second. */
  provisionedDurationPerGbSecond: { x86_64: 0.0000097222, arm64: 0.0000077778 },
  /** SnapStart (Python): snapshot cache per GB-second for each active version. */
  snapStartCachePerGbSecond: 0.0000015046,
  /** SnapStart (Python): each restore, per GB of memory. */
  snapStartRestorePerGb: 0.0001397998,
  schedulerPerMillion: 1.0,
};

const SECONDS_PER_MONTH = 730 * 3600;
const WARM_RUNS_PER_MONTH = 8760; // every 5 minutes

export interface StrategyCostInput {
  readonly memoryMb: number;
  readonly arm64: boolean;
  /** Environments kept ready. */
  readonly environments: number;
  /** Average utilization of the provisioned environments, 0–1 (provisioned concurrency only). */
  readonly utilization: number;
  /** Hold of each warm ping, in seconds. */
  readonly holdSeconds: number;
  /** Cold starts a month that SnapStart turns into restores. */
  readonly restoresPerMonth: number;
}

export interface StrategyCost {
  /** Warmer: scheduled pings of N environments, the warmer function itself included. */
  readonly warmer: number;
  /** Provisioned concurrency: N environments configured all month. */
  readonly provisioned: number;
  /**
   * Provisioned concurrency less what serving on it saves against on-demand duration at the given
   * utilization; negative above the break-even utilization (about 0.6).
   */
  readonly provisionedNet: number;
  /** SnapStart: the snapshot cache of one active version plus the restores. */
  readonly snapStart: number;
}

export function monthlyCost(input: StrategyCostInput): StrategyCost {
  const arch = input.arm64 ? 'arm64' : 'x86_64';
  const gb = input.memoryMb / 1024;
  const pings = input.environments * WARM_RUNS_PER_MONTH;
  const warmerFunction = WARM_RUNS_PER_MONTH * (1769 / 1024) * 1 * PRICES.durationPerGbSecond.arm64; // 1,769 MB, ~1 s
  const warmer = WARM_RUNS_PER_MONTH * PRICES.schedulerPerMillion / 1e6
    + pings * (PRICES.requestPerMillion / 1e6 + input.holdSeconds * gb * PRICES.durationPerGbSecond[arch])
    + warmerFunction;
  // Serving traffic on provisioned environments is cheaper per GB-s than on-demand; count that back.
  const servedGbSeconds = input.environments * gb * SECONDS_PER_MONTH * input.utilization;
  const provisioned = input.environments * gb * SECONDS_PER_MONTH * PRICES.provisionedPerGbSecond[arch];
  const provisionedNet = provisioned - servedGbSeconds * (PRICES.durationPerGbSecond[arch] - PRICES.provisionedDurationPerGbSecond[arch]);
  const snapStart = gb * SECONDS_PER_MONTH * PRICES.snapStartCachePerGbSecond + input.restoresPerMonth * gb * PRICES.snapStartRestorePerGb;
  return { warmer: round2(warmer), provisioned: round2(provisioned), provisionedNet: round2(provisionedNet), snapStart: round2(snapStart) };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
