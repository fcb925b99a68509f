/**
 * Monotonic milliseconds. Not performance.now(): in Node the `performance` global loads perf_hooks on
 * first use, about a millisecond of INIT that nothing else needs.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Milliseconds as reported in answers and metrics: to 0.1 ms. */
export function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}
