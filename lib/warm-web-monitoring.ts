import { Duration, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { CountAlarmOptions, DurationAlarmOptions, PercentAlarmOptions, RatioAlarmOptions } from './alarm-options';
import { alarmOnce, checkThreshold, durationIn } from './private/alarms';
import { num, propError } from './private/errors';
import { ReadReplicaRouter } from './read-replica-router';
import { WarmWebFunction } from './warm-web-function';
import { WebCache } from './web-cache';

/**
 * What every `add…` of `WarmWebMonitoring` takes.
 */
export interface MonitoringOptions {
  /**
   * Title of the dashboard row. Calls with the same title share one row.
   *
   * @default - the kind and path of the construct, e.g. `Web function Prod/Web`
   */
  readonly title?: string;

  /**
   * Add the alarms; `false` adds the widgets only.
   *
   * @default true
   */
  readonly alarms?: boolean;
}

/**
 * How a `WarmWebFunction` is watched: every alarm's threshold, in one shape per unit.
 */
export interface FunctionMonitoringOptions extends MonitoringOptions {
  /**
   * Failed invokes of the alias, in percent of invokes, per 5 minutes.
   *
   * @default - above 1 %, 3 periods in a row
   */
  readonly errorRateAlarm?: PercentAlarmOptions;

  /**
   * Throttled requests (clients got 429/503), per 5 minutes.
   *
   * @default - above 0, in 1 period
   */
  readonly throttlesAlarm?: CountAlarmOptions;

  /**
   * p99 duration of the alias, per 5 minutes.
   *
   * @default - above 80 % of the function's timeout, 3 periods in a row (no alarm when the timeout is a token)
   */
  readonly durationAlarm?: DurationAlarmOptions;

  /**
   * Cold starts per 5 minutes: traffic outgrows the warm and provisioned environments.
   *
   * @default - above 10, 3 periods in a row
   */
  readonly coldStartsAlarm?: CountAlarmOptions;

  /**
   * p99 INIT duration, per 5 minutes: near Lambda's 10 s INIT limit.
   *
   * @default - above the function's `initWarningThreshold` (8 s), in 1 period
   */
  readonly initDurationAlarm?: DurationAlarmOptions;

  /**
   * Warm coverage (only for a function with `warming`): see `WarmWebFunction.addWarmCoverageAlarm`.
   *
   * @default - below 1, 3 periods in a row, or no data
   */
  readonly warmCoverageAlarm?: RatioAlarmOptions;

  /**
   * Throttled warm pings (only for a function with `warming`): see `WarmWebFunction.addWarmThrottleAlarm`.
   *
   * @default - at least 1, in 2 of 3 periods
   */
  readonly warmThrottleAlarm?: CountAlarmOptions;

  /**
   * Provisioned concurrency spill-over (only with `provisionedConcurrency` and without `warming`: with a
   * warmer on top, pings and bursts are meant to land on warmed on-demand environments).
   *
   * @default - above 0, in 1 period
   */
  readonly spilloverAlarm?: CountAlarmOptions;

  /**
   * Provisioned concurrency utilization (only with `provisionedConcurrency`).
   *
   * @default - at least 0.9, 3 one-minute periods in a row
   */
  readonly utilizationAlarm?: RatioAlarmOptions;
}

/**
 * How a `ReadReplicaRouter` is watched.
 */
export interface RouterMonitoringOptions extends MonitoringOptions {
  /**
   * Pinned connections through the proxy (only with a proxy): see `ReadReplicaRouter.addSessionPinningAlarm`.
   *
   * @default - above 0, 3 periods in a row
   */
  readonly sessionPinningAlarm?: CountAlarmOptions;

  /**
   * The proxy's pool in use, in percent of what the database allows (only with a proxy).
   *
   * @default - above 90 %, 3 periods in a row
   */
  readonly connectionSaturationAlarm?: PercentAlarmOptions;

  /**
   * How far the readers are behind the writer.
   *
   * @default - more than 5 seconds, 3 one-minute periods in a row
   */
  readonly replicaLagAlarm?: DurationAlarmOptions;
}

/**
 * How a `WebCache` is watched.
 */
export interface CacheMonitoringOptions extends MonitoringOptions {
  /**
   * Share of lookups that hit, in percent.
   *
   * @default - below 50 %, 4 fifteen-minute periods in a row
   */
  readonly hitRateAlarm?: PercentAlarmOptions;
}

/**
 * Properties of a `WarmWebMonitoring`.
 */
export interface WarmWebMonitoringProps {
  /**
   * The dashboard to add rows to.
   *
   * @default - a new dashboard showing the last 3 hours
   */
  readonly dashboard?: cloudwatch.Dashboard;

  /**
   * Name of the new dashboard (when `dashboard` is not given).
   *
   * @default - a name CloudFormation generates
   */
  readonly dashboardName?: string;

  /**
   * What every alarm does when it fires, e.g. `new SnsAction(topic)`.
   *
   * @default - nothing: the alarms only show in the console
   */
  readonly alarmActions?: cloudwatch.IAlarmAction[];
}

/**
 * A dashboard and alarms for any number of `WarmWebFunction`s, `ReadReplicaRouter`s and `WebCache`s,
 * in any stack: one row per construct, and alarms with thresholds you can change (each an options object
 * of its unit: `CountAlarmOptions`, `PercentAlarmOptions`, `RatioAlarmOptions`, `DurationAlarmOptions`).
 * The alarms are the constructs' own (made once, under the construct: `web.node.findChild('ColdStartsAlarm')`);
 * `WarmWebStack` uses this construct for its dashboard.
 */
export class WarmWebMonitoring extends Construct {
  /** The dashboard. */
  public readonly dashboard: cloudwatch.Dashboard;

  /** Every alarm added, in the order added. */
  public readonly alarms: cloudwatch.IAlarm[] = [];

  private readonly alarmActions: cloudwatch.IAlarmAction[];
  private readonly rows = new Map<string, OpenRow>();
  private readonly monitored = new Set<Construct>();

  constructor(scope: Construct, id: string, props: WarmWebMonitoringProps = {}) {
    super(scope, id);
    if (props.dashboard && props.dashboardName !== undefined) {
      throw propError(this, `dashboardName '${props.dashboardName}' is for a new dashboard; a given dashboard keeps its own name`);
    }
    this.dashboard = props.dashboard ?? new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName,
      defaultInterval: Duration.hours(3),
    });
    this.alarmActions = props.alarmActions ?? [];
  }

  /**
   * Adds a row for a web function: requests, errors and throttles; duration; cold starts and INIT; warm
   * coverage (with `warming`); provisioned concurrency (with `provisionedConcurrency`), and their alarms.
   */
  public addFunction(fn: WarmWebFunction, options: FunctionMonitoringOptions = {}): void {
    this.once('addFunction', fn);
    const period = Duration.minutes(5);
    const alias = fn.alias;
    const name = fn.node.id;
    const widgets: cloudwatch.IWidget[] = [
      new cloudwatch.GraphWidget({
        title: `${name}: requests, errors, throttles`,
        left: [alias.metricInvocations({ period }), alias.metricErrors({ period }), alias.metricThrottles({ period })],
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: `${name}: duration`,
        left: [alias.metricDuration({ period, statistic: 'p50' }), alias.metricDuration({ period, statistic: 'p99' })],
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: `${name}: cold starts and INIT (p99)`,
        left: [fn.metricColdStarts({ period })],
        right: [fn.metricInitDuration({ period })],
        width: 6,
      }),
    ];
    // A traffic shift rolls back when the new version fails or slows (cold starts are expected of it).
    const rollsBack = (made: cloudwatch.Alarm[]) => {
      if (fn.deployment?.deploymentGroup) made.forEach((alarm) => fn.deployment!.addRollbackAlarm(alarm));
      return made;
    };
    const alarms: Array<() => cloudwatch.Alarm[]> = [
      () => [...rollsBack([errorRateAlarm(fn, options.errorRateAlarm ?? {})]), throttlesAlarm(fn, options.throttlesAlarm ?? {})],
      () => rollsBack(durationAlarm(fn, options.durationAlarm ?? {})),
      () => [coldStartsAlarm(fn, options.coldStartsAlarm ?? {})],
      () => initDurationAlarm(fn, options.initDurationAlarm ?? {}),
    ];
    if (fn._warmed) {
      widgets.push(new cloudwatch.GraphWidget({
        title: `${name}: warm coverage (1 = all wanted environments warm)`,
        left: [fn.metricWarmCoverage({ period })],
        leftYAxis: { min: 0, max: 1 },
        width: 6,
      }));
      alarms.push(() => [fn.addWarmCoverageAlarm(options.warmCoverageAlarm), fn.addWarmThrottleAlarm(options.warmThrottleAlarm)]);
    }
    const pc = fn.provisionedAutoScaling;
    if (pc) {
      widgets.push(new cloudwatch.GraphWidget({
        title: `${name}: provisioned concurrency`,
        left: [pc.metricSpilloverInvocations({ period })],
        right: [pc.metricUtilization()],
        rightYAxis: { min: 0, max: 1 },
        width: 6,
      }));
      if (!fn._warmed) alarms.push(() => [pc.addSpilloverAlarm(options.spilloverAlarm)]);
      alarms.push(() => [pc.addUtilizationAlarm(options.utilizationAlarm)]);
    }
    this.addToRow(options.title ?? `Web function ${fn.node.path}`, widgets);
    this.addAlarms(options, alarms);
  }

  /**
   * Adds a row for a database router: connections (with a proxy: client and pinned ones too) and replica
   * lag, and their alarms.
   */
  public addRouter(router: ReadReplicaRouter, options: RouterMonitoringOptions = {}): void {
    this.once('addRouter', router);
    const period = Duration.minutes(5);
    const connections: cloudwatch.IMetric[] = [router.metricDatabaseConnections({ period, label: 'Database connections' })];
    const alarms: Array<() => cloudwatch.Alarm[]> = [];
    if (router.proxy) {
      connections.push(router.metricClientConnections({ period, label: 'Client connections (proxy)' }));
      connections.push(router.metricSessionPinned({ period, label: 'Pinned sessions' }));
      alarms.push(() => [
        router.addSessionPinningAlarm(options.sessionPinningAlarm),
        router.addConnectionSaturationAlarm(options.connectionSaturationAlarm),
      ]);
    }
    alarms.push(() => [router.addReplicaLagAlarm(options.replicaLagAlarm)]);
    this.addToRow(options.title ?? `Database ${router.node.path}`, [
      new cloudwatch.GraphWidget({ title: 'Database connections', left: connections, width: 8 }),
      new cloudwatch.GraphWidget({ title: 'Replica lag', left: [router.metricReplicaLag({ period: Duration.minutes(1) })], width: 8 }),
    ]);
    this.addAlarms(options, alarms);
  }

  /**
   * Adds a row for a cache: its hit rate, and its alarm.
   */
  public addCache(cache: WebCache, options: CacheMonitoringOptions = {}): void {
    this.once('addCache', cache);
    this.addToRow(options.title ?? `Cache ${cache.node.path}`, [new cloudwatch.GraphWidget({
      title: 'Cache hit rate (%)',
      left: [cache.metricHitRate(Duration.minutes(5))],
      leftYAxis: { min: 0, max: 100 },
      width: 8,
    })]);
    this.addAlarms(options, [() => [cache.addHitRateAlarm(options.hitRateAlarm)]]);
  }

  /**
   * Gives an alarm of yours the monitoring's alarm actions, and lists it in `alarms`. Adding an alarm
   * again changes nothing.
   */
  public addAlarm(alarm: cloudwatch.IAlarm): void {
    if (this.alarms.includes(alarm)) return;
    if (alarm instanceof cloudwatch.Alarm) {
      alarm.addAlarmAction(...this.alarmActions);
    } else if (this.alarmActions.length > 0) {
      throw propError(this, `addAlarm: ${alarm.alarmArn} is an imported alarm; its actions cannot be changed here`);
    }
    this.alarms.push(alarm);
  }

  /** Alarms are made (by the constructs' helpers) only when wanted: `alarms: false` leaves no alarm behind. */
  private addAlarms(options: MonitoringOptions, alarms: Array<() => cloudwatch.Alarm[]>) {
    if (!(options.alarms ?? true)) return;
    alarms.flatMap((make) => make()).forEach((alarm) => this.addAlarm(alarm));
  }

  private once(method: string, construct: Construct) {
    if (this.monitored.has(construct)) {
      throw propError(this, `${method}: ${construct.node.path} is already monitored here`);
    }
    this.monitored.add(construct);
  }

  private addToRow(title: string, widgets: cloudwatch.IWidget[]) {
    const row = this.rows.get(title);
    if (row) {
      row.widgets.push(...widgets);
      return;
    }
    this.dashboard.addWidgets(new cloudwatch.TextWidget({ markdown: `## ${title}`, width: 24, height: 1 }));
    const created = new OpenRow(widgets);
    this.dashboard.addWidgets(created);
    this.rows.set(title, created);
  }
}

/**
 * A dashboard row that takes widgets until the dashboard is rendered, laid out as `Row` lays out its
 * constructor's widgets (`Row.addWidget` would start a new line).
 */
class OpenRow implements cloudwatch.IWidget {
  public readonly widgets: cloudwatch.IWidget[];
  private placed?: cloudwatch.Row;

  constructor(widgets: cloudwatch.IWidget[]) {
    this.widgets = [...widgets];
  }

  public get width(): number {
    return new cloudwatch.Row(...this.widgets).width;
  }

  public get height(): number {
    return new cloudwatch.Row(...this.widgets).height;
  }

  public position(x: number, y: number): void {
    this.placed = new cloudwatch.Row(...this.widgets);
    this.placed.position(x, y);
  }

  public toJson(): any[] {
    return (this.placed ?? new cloudwatch.Row(...this.widgets)).toJson();
  }
}

const FIVE_MINUTES = Duration.minutes(5);

function errorRateAlarm(fn: WarmWebFunction, options: PercentAlarmOptions): cloudwatch.Alarm {
  const method = 'errorRateAlarm';
  const threshold = checkThreshold(fn, method, options.threshold ?? 1, (v) => v >= 0 && v < 100, 'is a percentage from 0 to below 100');
  const periods = options.evaluationPeriods ?? 3;
  return alarmOnce(fn, {
    method,
    id: 'ErrorRateAlarm',
    metric: new cloudwatch.MathExpression({
      expression: '100 * errors / invocations',
      usingMetrics: { errors: fn.alias.metricErrors({ period: FIVE_MINUTES }), invocations: fn.alias.metricInvocations({ period: FIVE_MINUTES }) },
      label: 'Error rate (%)',
      period: FIVE_MINUTES,
    }),
    threshold,
    shownThreshold: num(threshold),
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: periods,
    datapointsToAlarm: options.datapointsToAlarm,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    description: `More than ${num(threshold)} % of invokes of ${fn.node.path} failed, ${minutes(5, periods)} in a row`,
  });
}

function throttlesAlarm(fn: WarmWebFunction, options: CountAlarmOptions): cloudwatch.Alarm {
  const method = 'throttlesAlarm';
  const threshold = checkThreshold(fn, method, options.threshold ?? 0, (v) => v >= 0, 'is a count >= 0');
  return alarmOnce(fn, {
    method,
    id: 'ThrottlesAlarm',
    metric: fn.alias.metricThrottles({ period: FIVE_MINUTES }),
    threshold,
    shownThreshold: num(threshold),
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: options.evaluationPeriods ?? 1,
    datapointsToAlarm: options.datapointsToAlarm,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    description: options.threshold === undefined
      ? `Requests to ${fn.node.path} were throttled (clients got 429/503)`
      : `More than ${num(threshold)} requests to ${fn.node.path} per 5 minutes were throttled (clients got 429/503)`,
  });
}

function durationAlarm(fn: WarmWebFunction, options: DurationAlarmOptions): cloudwatch.Alarm[] {
  const method = 'durationAlarm';
  const timeout = fn.lambdaFunction.timeout ?? Duration.seconds(3);
  if (!options.threshold && timeout.isUnresolved()) return [];
  const threshold = options.threshold ?? Duration.millis(timeout.toMilliseconds() * 0.8);
  const { value, shown } = durationIn(threshold, 'ms');
  checkThreshold(fn, method, value, (v) => v > 0, 'is a duration above 0');
  const periods = options.evaluationPeriods ?? 3;
  return [alarmOnce(fn, {
    method,
    id: 'DurationAlarm',
    metric: fn.alias.metricDuration({ period: FIVE_MINUTES, statistic: 'p99' }),
    threshold: value,
    shownThreshold: shown,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: periods,
    datapointsToAlarm: options.datapointsToAlarm,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    description: options.threshold
      ? `p99 duration of ${fn.node.path} is above ${shown}, ${minutes(5, periods)} in a row`
      : `p99 duration of ${fn.node.path} is above 80 % of its ${timeout.toHumanString()} timeout`,
  })];
}

function coldStartsAlarm(fn: WarmWebFunction, options: CountAlarmOptions): cloudwatch.Alarm {
  const method = 'coldStartsAlarm';
  const threshold = checkThreshold(fn, method, options.threshold ?? 10, (v) => v >= 0, 'is a count >= 0');
  const periods = options.evaluationPeriods ?? 3;
  return alarmOnce(fn, {
    method,
    id: 'ColdStartsAlarm',
    metric: fn.metricColdStarts({ period: FIVE_MINUTES }),
    threshold,
    shownThreshold: num(threshold),
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: periods,
    datapointsToAlarm: options.datapointsToAlarm,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    description: `More than ${num(threshold)} cold starts of ${fn.node.path} per 5 minutes, `
      + `${minutes(5, periods)} in a row: traffic outgrows the warm and provisioned environments`,
  });
}

function initDurationAlarm(fn: WarmWebFunction, options: DurationAlarmOptions): cloudwatch.Alarm[] {
  const method = 'initDurationAlarm';
  const threshold = options.threshold ?? fn._initWarningThreshold;
  if (threshold.isUnresolved() && !options.threshold) return [];
  const { value, shown } = durationIn(threshold, 'ms');
  checkThreshold(fn, method, value, (v) => v > 0, 'is a duration above 0');
  return [alarmOnce(fn, {
    method,
    id: 'InitDurationAlarm',
    metric: fn.metricInitDuration({ period: FIVE_MINUTES }),
    threshold: value,
    shownThreshold: shown,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: options.evaluationPeriods ?? 1,
    datapointsToAlarm: options.datapointsToAlarm,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    description: `p99 INIT of ${fn.node.path} is above ${shown}: near the 10 s INIT limit`,
  })];
}

/** `15 minutes` for 3 periods of 5; a token count of periods shows as its reference. */
function minutes(each: number, periods: number): string {
  return Token.isUnresolved(periods) ? `${num(periods)} periods of ${each} minutes` : `${each * periods} minutes`;
}
