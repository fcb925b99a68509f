import { Aws, CfnOutput, Duration, RemovalPolicies, Stack, StackProps, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { DELETION_PROTECTION_CONTEXT } from './private/deletion-protection';
import { propError } from './private/errors';
import { ensureS3GatewayEndpoint } from './private/subnets';
import { ReadReplicaRouter, ReadReplicaRouterOptions } from './read-replica-router';
import { WarmWebFunction, WarmWebFunctionOptions } from './warm-web-function';
import { CacheMonitoringOptions, FunctionMonitoringOptions, RouterMonitoringOptions, WarmWebMonitoring } from './warm-web-monitoring';
import { WebCache, WebCacheOptions } from './web-cache';

/**
 * The thresholds of a `WarmWebStack`'s alarms.
 */
export interface WarmWebStackMonitoringOptions {
  /**
   * For every web function of the stack (`web` and each `addWebFunction`).
   *
   * @default - the defaults of `FunctionMonitoringOptions`
   */
  readonly functions?: FunctionMonitoringOptions;

  /**
   * For the database router.
   *
   * @default - the defaults of `RouterMonitoringOptions`
   */
  readonly database?: RouterMonitoringOptions;

  /**
   * For the cache.
   *
   * @default - the defaults of `CacheMonitoringOptions`
   */
  readonly cache?: CacheMonitoringOptions;
}

/**
 * Properties of a `WarmWebStack`.
 */
export interface WarmWebStackProps extends StackProps {
  /**
   * The web app: the stack's first `WarmWebFunction` (construct id `Web`). Add more with `addWebFunction`.
   */
  readonly web: WarmWebFunctionOptions;

  /**
   * A database behind a `ReadReplicaRouter` (RDS Proxy by default) that every web function of the
   * stack reaches, e.g. `{ database: RouterDatabase.aurora({ readers: 1 }) }`.
   *
   * @default - no database
   */
  readonly database?: ReadReplicaRouterOptions;

  /**
   * A `WebCache` (ElastiCache Valkey) that every web function of the stack reaches; `{}` for the defaults.
   *
   * @default - no cache
   */
  readonly cache?: WebCacheOptions;

  /**
   * NAT gateways of the VPC (0–2), which exists when there is a database or a cache. Without NAT the
   * functions reach nothing outside the VPC but AWS services through endpoints: S3 (gateway), Secrets
   * Manager and CloudWatch Logs (interface). One NAT gateway costs about 33 USD a month plus traffic.
   *
   * @default 0
   */
  readonly natGateways?: number;

  /**
   * Protect what holds data: databases refuse deletion, log groups are retained, and the stack has
   * termination protection (unless `terminationProtection` says otherwise). Turn off for throw-away stacks.
   *
   * @default true
   */
  readonly deletionProtection?: boolean;

  /**
   * Where the stack's alarms notify.
   *
   * @default - a new SNS topic encrypted with a new KMS key (output `AlarmTopicArn`: subscribe to it)
   */
  readonly alarmTopic?: sns.ITopic;

  /**
   * Cold starts of one web function in 5 minutes that, three periods in a row, raise an alarm: traffic
   * is outgrowing the warm and provisioned environments. The same as
   * `monitoring: { functions: { coldStartsAlarm: { threshold } } }`; give one of them.
   *
   * @default 10
   */
  readonly coldStartAlarmThreshold?: number;

  /**
   * Thresholds of the alarms (and titles of the dashboard rows), per kind of construct.
   *
   * @default - the defaults of `WarmWebMonitoring`
   */
  readonly monitoring?: WarmWebStackMonitoringOptions;
}

/**
 * The whole cdk-warm-web architecture in one stack: web functions that boot during INIT, kept warm
 * and provisioned through their `live` alias; when asked for, a database with read replicas behind
 * RDS Proxy and a cache, in a two-AZ VPC of their own; a dashboard and alarms for all of it.
 *
 * ```ts
 * new WarmWebStack(app, 'Prod', {
 *   web: {
 *     app: WebApp.wsgi('mysite.wsgi:application'),
 *     code: WebCode.fromSlimAsset('build'),
 *     warming: { concurrency: 5 },
 *   },
 *   database: { database: RouterDatabase.aurora({ readers: 1 }) },
 *   cache: {},
 * });
 * ```
 */
export class WarmWebStack extends Stack {
  /** The VPC of the functions, the database and the cache, when there is a database or a cache. */
  public readonly vpc?: ec2.IVpc;

  /** The web app given as `web`. */
  public readonly web: WarmWebFunction;

  /** The database router, when `database` is set. */
  public readonly database?: ReadReplicaRouter;

  /** The cache, when `cache` is set. */
  public readonly cache?: WebCache;

  /** The dashboard of the stack: one row per web function, one for the data tier. */
  public readonly dashboard: cloudwatch.Dashboard;

  /** What makes the dashboard and the alarms: add your own alarms with `monitoring.addAlarm`. */
  public readonly monitoring: WarmWebMonitoring;

  /** Where the alarms notify. */
  public readonly alarmTopic: sns.ITopic;

  /** Every alarm of the stack. */
  public readonly alarms: cloudwatch.IAlarm[];

  private readonly functionMonitoring: FunctionMonitoringOptions;

  constructor(scope: Construct, id: string, props: WarmWebStackProps) {
    const deletionProtection = props.deletionProtection ?? true;
    super(scope, id, { ...props, terminationProtection: props.terminationProtection ?? deletionProtection });
    this.node.setContext(DELETION_PROTECTION_CONTEXT, deletionProtection);
    if (!deletionProtection) {
      RemovalPolicies.of(this).destroy({ applyToResourceTypes: ['AWS::Logs::LogGroup'] });
    }
    const natGateways = props.natGateways ?? 0;
    if (!Token.isUnresolved(natGateways) && (!Number.isInteger(natGateways) || natGateways < 0 || natGateways > 2)) {
      throw propError(this, `natGateways must be 0, 1 or 2 (one per AZ at most), got ${natGateways}`);
    }
    if (Token.isUnresolved(natGateways)) {
      throw propError(this, 'natGateways must be a number known at synth: it sets which subnets the VPC has');
    }
    const coldStarts = props.coldStartAlarmThreshold;
    if (coldStarts !== undefined && !Token.isUnresolved(coldStarts) && !(coldStarts >= 1)) {
      throw propError(this, `coldStartAlarmThreshold must be at least 1, got ${coldStarts}`);
    }
    const functionMonitoring = props.monitoring?.functions ?? {};
    if (coldStarts !== undefined && functionMonitoring.coldStartsAlarm) {
      throw propError(this, 'coldStartAlarmThreshold: give it or monitoring.functions.coldStartsAlarm, not both');
    }
    this.functionMonitoring = coldStarts === undefined ? functionMonitoring
      : { ...functionMonitoring, coldStartsAlarm: { threshold: coldStarts } };

    if (props.database || props.cache) {
      this.vpc = newVpc(this, natGateways);
      if (props.database) {
        this.database = new ReadReplicaRouter(this, 'Database', { ...props.database, vpc: this.vpc });
        new CfnOutput(this, 'DatabaseWriterEndpoint', { value: this.database.environment.DB_WRITER_HOST, description: 'Writes and transactions' });
        new CfnOutput(this, 'DatabaseReaderEndpoint', { value: this.database.environment.DB_READER_HOST, description: 'Reads' });
      }
      if (props.cache) {
        this.cache = new WebCache(this, 'Cache', { ...props.cache, vpc: this.vpc });
        new CfnOutput(this, 'CacheEndpoint', { value: `${this.cache.endpointAddress}:${this.cache.endpointPort}`, description: 'Valkey, TLS only' });
      }
    } else if (natGateways > 0) {
      throw propError(this, `natGateways is ${natGateways}, but without a database or cache the stack has no VPC`);
    }

    this.alarmTopic = props.alarmTopic ?? newAlarmTopic(this);
    if (!props.alarmTopic) {
      new CfnOutput(this, 'AlarmTopicArn', { value: this.alarmTopic.topicArn, description: 'Subscribe to receive the alarms' });
    }
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(3) });
    new CfnOutput(this, 'DashboardUrl', {
      value: `https://${Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region=${Aws.REGION}#dashboards:name=${this.dashboard.dashboardName}`,
    });

    this.monitoring = new WarmWebMonitoring(this, 'Monitoring', {
      dashboard: this.dashboard,
      alarmActions: [new actions.SnsAction(this.alarmTopic)],
    });
    this.alarms = this.monitoring.alarms;

    this.web = this.addWebFunction('Web', props.web);
    if (this.database) this.monitoring.addRouter(this.database, { title: DATA_TIER, ...props.monitoring?.database });
    if (this.cache) this.monitoring.addCache(this.cache, { title: DATA_TIER, ...props.monitoring?.cache });
  }

  /**
   * Adds a web function (an admin site, an API next to the site): it reaches the stack's database and
   * cache, and gets its own dashboard row and alarms.
   *
   * @param id construct id, unique in the stack
   * @param options the function
   */
  public addWebFunction(id: string, options: WarmWebFunctionOptions): WarmWebFunction {
    const fn = new WarmWebFunction(this, id, { ...options, database: this.database, cache: this.cache, vpc: this.vpc });
    this.monitoring.addFunction(fn, this.functionMonitoring);
    return fn;
  }
}

const DATA_TIER = 'Data tier';

const VPC_CIDR = '10.0.0.0/16';

/**
 * Two AZs. Without NAT: isolated subnets only, and the endpoints functions need. With NAT: public
 * subnets for the gateways, private ones for the functions, isolated ones for the data tier.
 */
function newVpc(scope: Construct, natGateways: number): ec2.Vpc {
  const subnetConfiguration: ec2.SubnetConfiguration[] = natGateways > 0
    ? [
      { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
      { name: 'app', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      { name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
    ]
    : [
      { name: 'app', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 20 },
      { name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
    ];
  const flowLogs = new logs.LogGroup(scope, 'VpcFlowLogs', { retention: logs.RetentionDays.ONE_MONTH });
  const vpc = new ec2.Vpc(scope, 'Vpc', {
    ipAddresses: ec2.IpAddresses.cidr(VPC_CIDR),
    maxAzs: 2,
    natGateways,
    subnetConfiguration,
    restrictDefaultSecurityGroup: true,
    flowLogs: { all: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs) } },
  });
  if (natGateways === 0) {
    ensureS3GatewayEndpoint(vpc);
    for (const [id, service] of [
      ['SecretsManagerEndpoint', ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER],
      ['LogsEndpoint', ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS],
    ] as const) {
      const endpoint = vpc.addInterfaceEndpoint(id, { service, open: false });
      // The functions and the database's secret rotation call these; nothing outside the VPC can.
      endpoint.connections.allowFrom(ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(443), 'HTTPS from inside the VPC');
    }
  }
  return vpc;
}

function newAlarmTopic(scope: Construct): sns.Topic {
  // CloudWatch cannot publish to a topic under the AWS managed SNS key: a key of our own says it may.
  const key = new kms.Key(scope, 'AlarmTopicKey', { enableKeyRotation: true, description: `Encrypts the alarm topic of ${scope.node.path}` });
  key.grant(new iam.ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
  return new sns.Topic(scope, 'AlarmTopic', { masterKey: key, enforceSSL: true, displayName: `Alarms of ${scope.node.path}` });
}
