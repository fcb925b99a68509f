export interface ColdStartMetrics {
  readonly functionName: string;
  readonly initDurationMs: number;
  readonly environmentId: string;
}

export interface SlowInitMetrics extends ColdStartMetrics {
  /** The INIT budget that was passed (WARM_WEB_INIT_WARN_MS). */
  readonly initWarnMs: number;
}

function envelope(metrics: ReadonlyArray<{ Name: string; Unit: string }>, timestamp: number): Record<string, unknown> {
  return {
    _aws: {
      Timestamp: timestamp,
      CloudWatchMetrics: [{ Namespace: 'WarmWeb', Dimensions: [['FunctionName']], Metrics: metrics }],
    },
  };
}

/** The CloudWatch Embedded Metric Format document for an environment's first invoke. */
export function coldStartDocument(metrics: ColdStartMetrics, timestamp: number): Record<string, unknown> {
  return {
    ...envelope([{ Name: 'ColdStart', Unit: 'Count' }, { Name: 'InitDurationMs', Unit: 'Milliseconds' }], timestamp),
    FunctionName: metrics.functionName,
    ColdStart: 1,
    InitDurationMs: metrics.initDurationMs,
    EnvironmentId: metrics.environmentId,
    Runtime: 'node',
  };
}

/**
 * The EMF document for an INIT longer than WARM_WEB_INIT_WARN_MS. Only SlowInit is a metric:
 * InitDurationMs is recorded by the cold-start document, and a second data point per slow
 * environment would skew its statistics, so here it is a property.
 */
export function slowInitDocument(metrics: SlowInitMetrics, timestamp: number): Record<string, unknown> {
  return {
    ...envelope([{ Name: 'SlowInit', Unit: 'Count' }], timestamp),
    FunctionName: metrics.functionName,
    SlowInit: 1,
    InitDurationMs: metrics.initDurationMs,
    InitWarnMs: metrics.initWarnMs,
    EnvironmentId: metrics.environmentId,
    Runtime: 'node',
  };
}

/**
 * Writes a document straight to stdout: Lambda's patched console would prefix the line with a timestamp
 * and request id, and CloudWatch only extracts metrics from log events that are pure JSON.
 */
function emit(document: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(document)}\n`);
}

export function emitColdStart(metrics: ColdStartMetrics): void {
  emit(coldStartDocument(metrics, Date.now()));
}

export function emitSlowInit(metrics: SlowInitMetrics): void {
  emit(slowInitDocument(metrics, Date.now()));
}
