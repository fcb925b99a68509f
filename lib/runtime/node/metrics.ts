export interface ColdStartMetrics {
  readonly functionName: string;
  readonly initDurationMs: number;
  readonly environmentId: string;
}

/** The CloudWatch Embedded Metric Format document for an environment's first invoke. */
export function coldStartDocument(metrics: ColdStartMetrics, timestamp: number): Record<string, unknown> {
  return {
    _aws: {
      Timestamp: timestamp,
      CloudWatchMetrics: [{
        Namespace: 'WarmWeb',
        Dimensions: [['FunctionName']],
        Metrics: [{ Name: 'ColdStart', Unit: 'Count' }, { Name: 'InitDurationMs', Unit: 'Milliseconds' }],
      }],
    },
    FunctionName: metrics.functionName,
    ColdStart: 1,
    InitDurationMs: metrics.initDurationMs,
    EnvironmentId: metrics.environmentId,
    Runtime: 'node',
  };
}

/**
 * Writes the document straight to stdout: Lambda's patched console would prefix the line with a timestamp
 * and request id, and CloudWatch only extracts metrics from log events that are pure JSON.
 */
export function emitColdStart(metrics: ColdStartMetrics): void {
  process.stdout.write(`${JSON.stringify(coldStartDocument(metrics, Date.now()))}\n`);
}
