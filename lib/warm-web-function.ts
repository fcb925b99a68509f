import { Annotations, CfnOutput, Duration, Names, Size, Token } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { CountAlarmOptions, RatioAlarmOptions } from './alarm-options';
import { alarmOnce, AlarmSpec, checkThreshold } from './private/alarms';
import { num, propError } from './private/errors';
import { functionRoleAndLogs } from './private/function-role';
import { ensureS3GatewayEndpoint } from './private/subnets';
import { ProvisionedAutoScaling, ProvisionedConcurrencyOptions } from './provisioned-auto-scaling';
import { ReadReplicaRouter } from './read-replica-router';
import { shimFor, shimLayer } from './shim-layer';
import { monthlyCost } from './strategy-cost';
import { WarmWebDeployment, WebDeploymentOptions } from './warm-web-deployment';
import { Warmer, WarmingOptions } from './warmer';
import { WebApp, WebAppLanguage } from './web-app';
import { WebCache } from './web-cache';
import { WebCode, WebCodeConfig } from './web-code';
import { WebEndpoint } from './web-endpoint';

/** CloudWatch namespace of the metrics the runtime shims and the warmer emit. */
const METRICS_NAMESPACE = 'WarmWeb';

const MIN_PYTHON_MINOR = 12;
const MIN_NODE_MAJOR = 22;

/**
 * What a web function runs and how: everything about a `WarmWebFunction` except the network and data
 * tier it is wired into (`WarmWebStack` wires those).
 */
export interface WarmWebFunctionOptions {
  /**
   * The app to run, e.g. `WebApp.wsgi('mysite.wsgi:application')`.
   */
  readonly app: WebApp;

  /**
   * Where the app's code (with its installed dependencies) comes from.
   */
  readonly code: WebCode;

  /**
   * The Lambda runtime. Must be of the app's language: Python 3.12 or newer, or Node.js 22 or newer.
   *
   * @default - lambda.Runtime.PYTHON_3_14 for Python apps, lambda.Runtime.NODEJS_24_X for Node apps
   */
  readonly runtime?: lambda.Runtime;

  /**
   * The processor architecture. Graviton costs about 20 % less per GB-second than x86.
   * Dependencies with native code must be built for it.
   *
   * @default lambda.Architecture.ARM_64
   */
  readonly architecture?: lambda.Architecture;

  /**
   * Memory in MB (128 to 10240). CPU is allocated in proportion, and INIT of a web framework is
   * CPU-bound: below 1024 MB cold starts grow quickly.
   *
   * @default 1024
   */
  readonly memorySize?: number;

  /**
   * How long one request may run (1 second to 15 minutes).
   *
   * @default Duration.seconds(30)
   */
  readonly timeout?: Duration;

  /**
   * Environment variables for the app. Names starting with `WARM_WEB_` are reserved for the shim.
   *
   * @default - none
   */
  readonly environment?: Record<string, string>;

  /**
   * How requests reach the `live` alias.
   *
   * @default WebEndpoint.functionUrl()
   */
  readonly endpoint?: WebEndpoint;

  /**
   * How long the function's logs are kept.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * X-Ray tracing.
   *
   * @default lambda.Tracing.DISABLED
   */
  readonly tracing?: lambda.Tracing;

  /**
   * The most environments the function may run at once. Protects a database behind it from a
   * traffic spike; requests beyond it are throttled (HTTP 429/503).
   *
   * @default - no reservation: the account's unreserved concurrency
   */
  readonly reservedConcurrentExecutions?: number;

  /**
   * Keep environments of the `live` alias warm with the stack's `Warmer`: N verified distinct
   * environments on a schedule, and a pre-warm of every new version on deploy.
   *
   * @default - not warmed
   */
  readonly warming?: WarmingOptions;

  /**
   * Provisioned concurrency on the `live` alias, with target tracking and schedules. The app is booted
   * during INIT, so provisioned environments serve their first request with it loaded.
   *
   * @default - none: on-demand environments only
   */
  readonly provisionedConcurrency?: ProvisionedConcurrencyOptions;

  /**
   * Publish versions with SnapStart: INIT runs once per version, and new environments resume from a
   * snapshot of the booted app. Python 3.12+ only; not with provisioned concurrency or more than 512 MB
   * of ephemeral storage.
   *
   * @default false
   */
  readonly snapStart?: boolean;

  /**
   * Paths the shim requests from the app during INIT (GET, no body), so URL resolvers, templates and ORM
   * metadata are warm before the first user request and in the SnapStart snapshot. Responses are
   * discarded; a failing path is logged, never fatal. Web apps only (wsgi, asgi, listener).
   *
   * @default - none
   */
  readonly prime?: string[];

  /**
   * A path prefix the app is mounted under, e.g. `/api`. When a request's path starts with it (as a
   * whole segment), the shim takes it off the path and hands it to the app as the script name: WSGI
   * `SCRIPT_NAME`, ASGI `root_path`, Node `req.aws.basePath` (after any stage prefix). For a prefix the
   * event cannot tell, such as an ALB path rule or routes that all start with the same segment; a REST
   * API's custom-domain base path mapping is found without it. Sets `WARM_WEB_BASE_PATH`.
   *
   * @default - none
   */
  readonly basePath?: string;

  /**
   * INIT that takes longer than this logs a warning and emits `SlowInit` (Lambda restarts an on-demand
   * INIT that passes 10 s inside the first invoke).
   *
   * @default Duration.seconds(8)
   */
  readonly initWarningThreshold?: Duration;

  /**
   * Bound INIT to about 9.5 s: when booting the app takes longer, the rest finishes inside the first
   * invoke instead of failing INIT (as the Lambda Web Adapter does). Python apps, on-demand only: not with
   * SnapStart or provisioned concurrency, whose INIT must finish booting.
   *
   * @default false
   */
  readonly asyncInit?: boolean;

  /**
   * The size of /tmp.
   *
   * @default Size.mebibytes(512)
   */
  readonly ephemeralStorageSize?: Size;

  /**
   * A description of the function.
   *
   * @default - the app kind and spec, e.g. `cdk-warm-web wsgi mysite.wsgi:application`
   */
  readonly description?: string;

  /**
   * What a deploy does before and while it moves the `live` alias to the new version: migrations the new
   * version runs first (a failure fails the deploy, the alias stays on the old version), a warm-up of its
   * environments, and canary or linear traffic shifting that rolls back on alarms.
   *
   * @default - the alias moves to each new version at once, with no command run before
   */
  readonly deployment?: WebDeploymentOptions;
}

/**
 * Properties of a `WarmWebFunction`.
 */
export interface WarmWebFunctionProps extends WarmWebFunctionOptions {
  /**
   * A database to use through a `ReadReplicaRouter`: the function runs in the router's VPC, may reach
   * the proxy (or replica) and gets the `DB_*` environment variables.
   *
   * @default - no database
   */
  readonly database?: ReadReplicaRouter;

  /**
   * A cache: the function runs in the cache's VPC, may reach it, and gets `CACHE_URL` and
   * `CACHE_SECRET_ARN`.
   *
   * @default - no cache
   */
  readonly cache?: WebCache;

  /**
   * The VPC to run in (for a database or cache inside it). Slim code in a VPC is fetched through an S3
   * gateway endpoint, which is added to the VPC when missing.
   *
   * @default - not in a VPC
   */
  readonly vpc?: ec2.IVpc;

  /**
   * Where in the VPC to place the function.
   *
   * @default - the VPC's private subnets
   */
  readonly vpcSubnets?: ec2.SubnetSelection;

  /**
   * Security groups of the function, in a VPC.
   *
   * @default - a new security group that allows all outbound traffic
   */
  readonly securityGroups?: ec2.ISecurityGroup[];
}

/**
 * A web app on AWS Lambda that boots during INIT and is served through one `live` alias.
 *
 * The function runs the cdk-warm-web runtime shim (a layer) which imports the app during INIT,
 * answers warm pings without the app seeing them, and adapts API Gateway, Function URL and ALB
 * events to WSGI, ASGI or Node's `http` objects. Every change of code or configuration publishes a
 * new version and moves the `live` alias to it; the endpoint, and everything that keeps the app
 * warm, targets the alias, never `$LATEST`.
 */
export class WarmWebFunction extends Construct implements iam.IGrantable {
  /** The name of the alias that all traffic goes to. */
  public static readonly ALIAS_NAME = 'live';

  /** The Lambda function. Invoke it only through `alias`. */
  public readonly lambdaFunction: lambda.Function;

  /** The version published for the current code and configuration. */
  public readonly version: lambda.Version;

  /** The `live` alias: the only entry point for traffic. */
  public readonly alias: lambda.Alias;

  /** The function's execution role. */
  public readonly role: iam.IRole;

  /** The function's log group. */
  public readonly logGroup: logs.ILogGroup;

  /**
   * The runtime shim layer added to the function.
   *
   * @default - undefined for container images, which hold the shim themselves
   */
  public readonly shimLayer?: lambda.ILayerVersion;

  /**
   * The URL that reaches the app.
   *
   * @default - undefined when the endpoint is `WebEndpoint.none()`
   */
  public readonly url?: string;

  /**
   * The Function URL, when the endpoint is one.
   *
   * @default - undefined unless the endpoint is `WebEndpoint.functionUrl()`
   */
  public readonly functionUrl?: lambda.FunctionUrl;

  /**
   * The HTTP API, when the endpoint is one.
   *
   * @default - undefined unless the endpoint is `WebEndpoint.httpApi()`
   */
  public readonly httpApi?: apigwv2.HttpApi;

  /**
   * The provisioned concurrency auto scaling of the alias, when configured.
   *
   * @default - undefined unless `provisionedConcurrency` is set
   */
  public readonly provisionedAutoScaling?: ProvisionedAutoScaling;

  /**
   * The migrations, warm-up and traffic shifting of each deploy, when configured.
   *
   * @default - undefined unless `deployment` is set
   */
  public readonly deployment?: WarmWebDeployment;

  public readonly grantPrincipal: iam.IPrincipal;

  /** @internal */
  public readonly _warmed: boolean;

  /** @internal */
  public readonly _initWarningThreshold: Duration;

  constructor(scope: Construct, id: string, props: WarmWebFunctionProps) {
    super(scope, id);

    const runtime = props.runtime ?? (props.app.language === WebAppLanguage.PYTHON ? lambda.Runtime.PYTHON_3_14 : lambda.Runtime.NODEJS_24_X);
    const timeout = props.timeout ?? Duration.seconds(30);
    const memorySize = props.memorySize ?? 1024;
    const endpoint = props.endpoint ?? WebEndpoint.functionUrl();
    validateRuntime(this, props.app, runtime);
    validateTimeout(this, timeout);
    validateMemorySize(this, memorySize);
    validateEnvironment(this, props.environment ?? {}, Object.keys({ ...props.database?.environment, ...props.cache?.environment }));
    validateStrategy(this, props, runtime);
    if (props.reservedConcurrentExecutions !== undefined && !Token.isUnresolved(props.reservedConcurrentExecutions)
      && (!Number.isInteger(props.reservedConcurrentExecutions) || props.reservedConcurrentExecutions < 1)) {
      throw propError(this, `reservedConcurrentExecutions must be an integer >= 1, got ${props.reservedConcurrentExecutions}`);
    }
    if (endpoint.maxTimeout && !timeout.isUnresolved() && timeout.toSeconds() > endpoint.maxTimeout.toSeconds()) {
      Annotations.of(this).addWarningV2('cdk-warm-web:timeoutBeyondEndpoint',
        `timeout is ${timeout.toHumanString()} but the endpoint ends requests after ${endpoint.maxTimeout.toHumanString()}`);
    }

    const architecture = props.architecture ?? lambda.Architecture.ARM_64;
    const vpc = props.vpc ?? props.database?.vpc ?? props.cache?.vpc;
    for (const [prop, other] of [['database', props.database?.vpc], ['cache', props.cache?.vpc]] as const) {
      if (other && vpc && other !== vpc) {
        throw propError(this, `${prop}: it is in VPC ${other.node.path}, but the function is in ${vpc.node.path}`);
      }
    }
    const shim = shimFor(props.app.language);

    const { role, logGroup } = functionRoleAndLogs(this, { role: 'ServiceRole', logGroup: 'LogGroup' }, {
      description: `Execution role of ${this.node.path}`,
      retention: props.logRetention,
    });
    this.logGroup = logGroup;
    this.role = role;
    this.grantPrincipal = role;

    const code = props.code.bind(this, { handler: shim.handler, shimDirectory: shim.directory, architecture, role, runtime });
    const ephemeralStorageSize = validateCode(this, props, code);
    if (vpc && code.environment?.WARM_WEB_SLIM_BUCKET) {
      ensureS3GatewayEndpoint(vpc);
    }
    this.shimLayer = code.image ? undefined : shimLayer(this, props.app.language);

    this.lambdaFunction = new lambda.Function(this, 'Resource', {
      runtime: code.image ? lambda.Runtime.FROM_IMAGE : runtime,
      architecture,
      handler: code.image ? lambda.Handler.FROM_IMAGE : shim.handler,
      code: code.code,
      layers: this.shimLayer ? [this.shimLayer] : undefined,
      vpc,
      vpcSubnets: props.vpcSubnets,
      securityGroups: props.securityGroups,
      memorySize,
      timeout,
      role,
      logGroup: this.logGroup,
      tracing: props.tracing ?? lambda.Tracing.DISABLED,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      description: props.description ?? `cdk-warm-web ${props.app.kind} ${props.app.spec}`,
      ephemeralStorageSize,
      snapStart: props.snapStart ? lambda.SnapStartConf.ON_PUBLISHED_VERSIONS : undefined,
      environment: {
        ...props.environment,
        ...code.environment,
        ...props.database?.environment,
        ...props.cache?.environment,
        WARM_WEB_APP: props.app.spec,
        WARM_WEB_APP_KIND: props.app.kind,
        ...shimOptions(props),
      },
    });
    props.database?.grantConnect(this.lambdaFunction);
    props.cache?.grantConnect(this.lambdaFunction);
    // A new shim (a cdk-warm-web upgrade) must publish a new version even if nothing else changed.
    this.lambdaFunction.invalidateVersionBasedOn(shim.fingerprint);

    this.version = this.lambdaFunction.currentVersion;
    this.alias = new lambda.Alias(this, 'LiveAlias', {
      aliasName: WarmWebFunction.ALIAS_NAME,
      version: this.version,
      description: 'All traffic: endpoint, warmer and provisioned concurrency target this alias',
      // Provisioned before the alias moves to a new version; auto scaling takes over from there.
      // (Invalid capacities are left to ProvisionedAutoScaling, which names the prop in its error.)
      provisionedConcurrentExecutions: positiveInteger(props.provisionedConcurrency?.minCapacity),
    });
    if (props.provisionedConcurrency) {
      this.provisionedAutoScaling = new ProvisionedAutoScaling(this, 'ProvisionedConcurrency', { alias: this.alias, ...props.provisionedConcurrency });
    }
    describeStrategy(this, props, memorySize, props.architecture ?? lambda.Architecture.ARM_64);

    if (props.deployment) {
      this.deployment = new WarmWebDeployment(this, 'Deployment', { ...props.deployment, alias: this.alias, app: props.app, timeout, environment: props.environment, warming: props.warming });
    }

    this._warmed = props.warming !== undefined;
    this._initWarningThreshold = props.initWarningThreshold ?? Duration.seconds(8);
    if (props.warming) {
      validateWarming(this, props.warming, props.reservedConcurrentExecutions);
      // The deployment's pre-traffic step warms each new version before traffic; the warmer need not after.
      const warming = this.deployment?.warmsNewVersions ? { ...props.warming, prewarmOnDeploy: false } : props.warming;
      Warmer.of(this).addTarget(Names.nodeUniqueId(this.node), this.alias, warming);
    }

    const bound = endpoint.bind(this, this.alias);
    this.url = bound.url;
    this.functionUrl = bound.functionUrl;
    this.httpApi = bound.httpApi;
    if (this.url) {
      new CfnOutput(this, 'Url', { value: this.url, description: `URL of ${this.node.path}` });
    }
  }

  /**
   * Cold starts: environments that served their first invoke (emitted by the runtime shim).
   *
   * @default - sum over 5 minutes
   */
  public metricColdStarts(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.shimMetric('ColdStart', { statistic: 'Sum', ...props });
  }

  /**
   * How long INIT took in each new environment, as measured by the runtime shim.
   *
   * @default - p99 over 5 minutes
   */
  public metricInitDuration(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.shimMetric('InitDurationMs', { statistic: 'p99', ...props });
  }

  /**
   * Share of the wanted environments that the warmer found warm and distinct (1 = all of them).
   *
   * @default - minimum over 5 minutes
   */
  public metricWarmCoverage(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.shimMetric('WarmCoverage', { statistic: 'Minimum', ...props });
  }

  /**
   * An alarm that fires when the warmer kept fewer than the wanted environments warm (coverage below
   * `threshold`, default 1) for 3 five-minute periods, or stopped reporting (missing data counts as
   * breaching). Called again with the same options, it returns the same alarm.
   */
  public addWarmCoverageAlarm(options: RatioAlarmOptions = {}): cloudwatch.Alarm {
    const method = 'addWarmCoverageAlarm';
    const threshold = checkThreshold(this, method, options.threshold ?? 1, (v) => v > 0 && v <= 1, 'is a ratio above 0 and at most 1');
    return this.warmingAlarm(method, options, {
      id: 'WarmCoverageAlarm',
      metric: this.metricWarmCoverage({ period: Duration.minutes(5) }),
      description: options.threshold === undefined
        ? `Fewer warm environments than wanted for ${this.node.path}, or the warmer stopped`
        : `Fewer warm environments than ${num(threshold)} of those wanted for ${this.node.path}, or the warmer stopped`,
      threshold,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
  }

  /**
   * Warm pings that Lambda throttled (429): the account's unreserved concurrency, or the function's
   * reserved concurrency, is below what warming asks for.
   *
   * @default - sum over 5 minutes
   */
  public metricWarmPingThrottles(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.shimMetric('WarmPingThrottles', { statistic: 'Sum', ...props });
  }

  /**
   * An alarm that fires when at least `threshold` (default 1) warm pings per five minutes were throttled,
   * in 2 of 3 periods: warming cannot reach the environments it wants. Called again with the same
   * options, it returns the same alarm.
   */
  public addWarmThrottleAlarm(options: CountAlarmOptions = {}): cloudwatch.Alarm {
    const method = 'addWarmThrottleAlarm';
    const threshold = checkThreshold(this, method, options.threshold ?? 1, (v) => v >= 1, 'is a count >= 1');
    return this.warmingAlarm(method, options, {
      id: 'WarmThrottleAlarm',
      metric: this.metricWarmPingThrottles({ period: Duration.minutes(5) }),
      description: `Warm pings of ${this.node.path} throttled: too little concurrency for warming`,
      threshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  private warmingAlarm(method: string, options: CountAlarmOptions, defaults: Omit<AlarmSpec, 'method' | 'shownThreshold'>): cloudwatch.Alarm {
    if (!this._warmed) {
      throw new Error(`${method}: ${this.node.path} has no warming configured`);
    }
    return alarmOnce(this, {
      ...defaults,
      method,
      shownThreshold: num(defaults.threshold),
      evaluationPeriods: options.evaluationPeriods ?? defaults.evaluationPeriods,
      datapointsToAlarm: options.datapointsToAlarm ?? defaults.datapointsToAlarm,
    });
  }

  private shimMetric(metricName: string, props: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName,
      dimensionsMap: { FunctionName: this.lambdaFunction.functionName },
      ...props,
    });
  }
}

/** The most environments warming asks for, of the values known at synth (a token is not comparable). */
function mostWarmed(warming: WarmingOptions): number {
  // Schedules and concurrency exclude each other (WarmingOptions); concurrency defaults to 1.
  const asked = warming.schedules ? warming.schedules.map((s) => s.concurrency) : [warming.concurrency ?? 1];
  return Math.max(...asked.filter((n) => !Token.isUnresolved(n)), 0);
}

function validateWarming(scope: Construct, warming: WarmingOptions, reserved?: number) {
  const wanted = mostWarmed(warming);
  if (reserved !== undefined && !Token.isUnresolved(reserved) && wanted > reserved) {
    throw propError(scope, `warming asks for ${wanted} environments but reservedConcurrentExecutions is ${reserved}: the pings would be throttled`);
  }
}

function validateStrategy(scope: Construct, props: WarmWebFunctionProps, runtime: lambda.Runtime) {
  if (props.snapStart) {
    const python = /^python3\.(\d+)$/.exec(runtime.name);
    if (!python) {
      throw propError(scope, `snapStart: Lambda offers SnapStart for Python (3.12+) and Java, not for ${runtime.name}`);
    }
    if (Number(python[1]) < 12) {
      throw propError(scope, `snapStart: SnapStart for Python needs Python 3.12 or newer, got ${runtime.name}`);
    }
    if (props.provisionedConcurrency) {
      throw propError(scope, 'snapStart: Lambda does not support SnapStart and provisioned concurrency on the same version; choose one');
    }
  }
  if (props.asyncInit && props.app.language !== WebAppLanguage.PYTHON) {
    throw propError(scope, `asyncInit: only the Python shim can finish booting in the first invoke; ${props.app.spec} is a Node app`);
  }
  if (props.asyncInit && (props.snapStart || props.provisionedConcurrency)) {
    throw propError(scope, `asyncInit: ${props.snapStart ? 'SnapStart' : 'provisioned concurrency'} must snapshot or keep a fully booted app; asyncInit is for on-demand functions only`);
  }
  if (props.prime) {
    if (props.app.kind === 'handler') {
      throw propError(scope, `prime: ${props.app.spec} is a plain handler; priming requests need a web app (wsgi, asgi or listener)`);
    }
    const bad = props.prime.find((p) => !p.startsWith('/'));
    if (bad !== undefined) {
      throw propError(scope, `prime: paths must start with '/', got '${bad}'`);
    }
  }
  const basePath = props.basePath;
  if (basePath !== undefined && !Token.isUnresolved(basePath)
    && (!basePath.startsWith('/') || basePath.endsWith('/') || /\/\/|[?#]/.test(basePath))) {
    throw propError(scope, `WarmWebFunction basePath must start with '/', not end with '/' and hold no '//', '?' or '#' (for example '/api'), got '${basePath}'`);
  }
  const threshold = props.initWarningThreshold;
  if (threshold && !threshold.isUnresolved() && (threshold.toMilliseconds() < 100 || threshold.toSeconds() > 10)) {
    throw propError(scope, `initWarningThreshold must be between 100 milliseconds and 10 seconds, got ${threshold.toHumanString()}`);
  }
}

/** Environment variables that tell the shim about priming, the INIT budget, async INIT and the base path. */
function shimOptions(props: WarmWebFunctionProps): Record<string, string> {
  const env: Record<string, string> = {};
  if (props.prime?.length) env.WARM_WEB_PRIME = JSON.stringify(props.prime);
  if (props.basePath !== undefined) env.WARM_WEB_BASE_PATH = props.basePath;
  if (props.initWarningThreshold) env.WARM_WEB_INIT_WARN_MS = String(props.initWarningThreshold.toMilliseconds());
  if (props.asyncInit) env.WARM_WEB_ASYNC_INIT = '1';
  return env;
}

/**
 * An info annotation with the monthly cost of each way of keeping environments ready, and a warning
 * when warmer and provisioned concurrency pay twice for the same environments.
 */
function describeStrategy(scope: Construct, props: WarmWebFunctionProps, memoryMb: number, architecture: lambda.Architecture) {
  const pc = props.provisionedConcurrency;
  const warmed = props.warming ? mostWarmed(props.warming) : 0;
  if (!pc && !warmed && !props.snapStart) return;
  if (Token.isUnresolved(memoryMb) || (pc && Token.isUnresolved(pc.minCapacity))) return;
  if (pc && warmed > 0 && warmed <= pc.minCapacity) {
    Annotations.of(scope).addWarningV2('cdk-warm-web:warmerAndProvisioned',
      `warming keeps ${warmed} environments warm but provisioned concurrency already keeps ${pc.minCapacity} ready: the warmer pays for environments that are always ready`);
  }
  const environments = Math.max(pc?.minCapacity ?? 0, warmed, 1);
  const utilization = pc?.utilizationTarget ?? 0.7;
  const cost = monthlyCost({
    memoryMb,
    arm64: architecture === lambda.Architecture.ARM_64,
    environments,
    utilization,
    holdSeconds: (props.warming?.holdTime?.toMilliseconds() ?? 250) / 1000,
    restoresPerMonth: 30 * 24 * environments,
  });
  // provisionedNet is what provisioned concurrency adds to the bill against the same traffic on demand:
  // negative above the break-even utilization, where it saves.
  const net = cost.provisionedNet >= 0
    ? `$${cost.provisionedNet.toFixed(2)} more than the same traffic on demand`
    : `$${(-cost.provisionedNet).toFixed(2)} less than the same traffic on demand`;
  Annotations.of(scope).addInfo(`cost per month of keeping ${environments} x ${memoryMb} MB environments ready (us-east-1 list prices): `
    + `warmer $${cost.warmer.toFixed(2)}; provisioned concurrency $${cost.provisioned.toFixed(2)} configured, at ${Math.round(utilization * 100)} % `
    + `utilization ${net}; SnapStart $${cost.snapStart.toFixed(2)} (one version, ${30 * 24 * environments} restores). `
    + 'The README\'s "Provisioned concurrency and SnapStart" compares them');
}

/** Checks what the code needs against the props; returns the /tmp size to give the function. */
function validateCode(scope: Construct, props: WarmWebFunctionProps, code: WebCodeConfig): Size | undefined {
  if (code.image && props.snapStart) {
    throw propError(scope, 'snapStart: Lambda does not support SnapStart for container images; use WebCode.fromDirectory or fromSlimAsset');
  }
  const needed = code.ephemeralStorageSize;
  const given = props.ephemeralStorageSize;
  if (needed && given && !given.isUnresolved() && given.toMebibytes() < needed.toMebibytes()) {
    throw propError(scope, `ephemeralStorageSize is ${given.toMebibytes()} MiB but the slim code needs ${needed.toMebibytes()} MiB of /tmp to unpack`);
  }
  const size = given ?? needed;
  if (props.snapStart && size && !size.isUnresolved() && size.toMebibytes() > 512) {
    throw propError(scope, `snapStart: SnapStart needs ephemeral storage of at most 512 MiB, got ${size.toMebibytes()} MiB`
      + (needed && !given ? ' (sized for the slim code)' : ''));
  }
  return size;
}

function positiveInteger(value?: number): number | undefined {
  return value !== undefined && (Token.isUnresolved(value) || (Number.isInteger(value) && value > 0)) ? value : undefined;
}

function validateRuntime(scope: Construct, app: WebApp, runtime: lambda.Runtime) {
  const python = /^python3\.(\d+)$/.exec(runtime.name);
  const node = /^nodejs(\d+)\.x$/.exec(runtime.name);
  if (app.language === WebAppLanguage.PYTHON && !(python && Number(python[1]) >= MIN_PYTHON_MINOR)) {
    throw propError(scope, `runtime ${runtime.name} cannot run the Python app '${app.spec}'; use Python 3.${MIN_PYTHON_MINOR} or newer (e.g. lambda.Runtime.PYTHON_3_14)`);
  }
  if (app.language === WebAppLanguage.NODE && !(node && Number(node[1]) >= MIN_NODE_MAJOR)) {
    throw propError(scope, `runtime ${runtime.name} cannot run the Node app '${app.spec}'; use Node.js ${MIN_NODE_MAJOR} or newer (e.g. lambda.Runtime.NODEJS_24_X)`);
  }
}

function validateTimeout(scope: Construct, timeout: Duration) {
  if (timeout.isUnresolved()) return;
  const seconds = timeout.toSeconds();
  if (seconds < 1 || seconds > 900) {
    throw propError(scope, `timeout must be between 1 second and 15 minutes, got ${timeout.toHumanString()}`);
  }
}

function validateMemorySize(scope: Construct, memorySize: number) {
  if (Token.isUnresolved(memorySize)) return;
  if (!Number.isInteger(memorySize) || memorySize < 128 || memorySize > 10240) {
    throw propError(scope, `memorySize must be an integer between 128 and 10240 (MB), got ${memorySize}`);
  }
}

function validateEnvironment(scope: Construct, environment: Record<string, string>, contract: string[]) {
  const reserved = Object.keys(environment).filter((name) => name.startsWith('WARM_WEB_'));
  if (reserved.length > 0) {
    throw propError(scope, `environment: ${reserved.join(', ')} ${reserved.length === 1 ? 'is' : 'are'} reserved for the cdk-warm-web runtime shim (names starting with WARM_WEB_)`);
  }
  const clash = Object.keys(environment).filter((name) => contract.includes(name));
  if (clash.length > 0) {
    throw propError(scope, `environment: ${clash.join(', ')} ${clash.length === 1 ? 'is' : 'are'} set by database or cache (their env contract)`);
  }
}
