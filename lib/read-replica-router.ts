import { Duration, RemovalPolicy, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { CountAlarmOptions, DurationAlarmOptions, PercentAlarmOptions } from './alarm-options';
import { alarmOnce, checkThreshold, durationIn } from './private/alarms';
import { deletionProtectionDefault } from './private/deletion-protection';
import { num, propError } from './private/errors';
import { dataSubnets } from './private/subnets';

const ADMIN_USER = 'app_admin';

/**
 * Options for an Aurora cluster that `ReadReplicaRouter` creates.
 */
export interface AuroraDatabaseOptions {
  /**
   * The engine.
   *
   * @default - Aurora PostgreSQL 16.13
   */
  readonly engine?: rds.IClusterEngine;

  /**
   * Reader instances (Aurora Serverless v2, scaling with the writer).
   *
   * @default 1
   */
  readonly readers?: number;

  /**
   * Smallest capacity of each instance, in ACUs.
   *
   * @default 0.5
   */
  readonly minCapacity?: number;

  /**
   * Largest capacity of each instance, in ACUs.
   *
   * @default 4
   */
  readonly maxCapacity?: number;

  /**
   * The database to create.
   *
   * @default 'app'
   */
  readonly databaseName?: string;

  /**
   * Refuse to delete the cluster (turn off only for throw-away stacks).
   *
   * @default - true; inside a `WarmWebStack`, the stack's `deletionProtection`
   */
  readonly deletionProtection?: boolean;
}

/**
 * Options for an RDS instance with a read replica that `ReadReplicaRouter` creates.
 */
export interface InstanceDatabaseOptions {
  /**
   * The engine.
   *
   * @default - PostgreSQL 16.13
   */
  readonly engine?: rds.IInstanceEngine;

  /**
   * Instance type of the primary and the replica.
   *
   * @default - t4g.medium
   */
  readonly instanceType?: ec2.InstanceType;

  /**
   * Storage of the primary, in GiB.
   *
   * @default 20
   */
  readonly allocatedStorage?: number;

  /**
   * The database to create.
   *
   * @default 'app'
   */
  readonly databaseName?: string;

  /**
   * Refuse to delete the instances (turn off only for throw-away stacks).
   *
   * @default - true; inside a `WarmWebStack`, the stack's `deletionProtection`
   */
  readonly deletionProtection?: boolean;
}

/**
 * How to reach a database that already exists.
 */
export interface AdoptedDatabaseOptions {
  /** The secret with `username` and `password` that the functions (or the proxy) use. */
  readonly secret: secretsmanager.ISecret;
  /** The database name. */
  readonly databaseName: string;
  /** The user in the secret, for IAM authentication and the env contract. */
  readonly username: string;
}

/** What a `RouterDatabase` resolves to inside a `ReadReplicaRouter`. */
interface BoundDatabase {
  readonly aurora: boolean;
  readonly engineFamily: string;
  readonly writer: ec2.IConnectable;
  readonly writerHost: string;
  readonly readerHost: string;
  readonly reader: ec2.IConnectable;
  readonly port: string;
  readonly portNumber: number;
  readonly secret: secretsmanager.ISecret;
  readonly databaseName: string;
  readonly username: string;
  readonly proxyTarget: rds.ProxyTarget;
  readonly grantConnect: (grantee: lambda.IFunction, username: string) => void;
  readonly replicaLag: cloudwatch.Metric;
  readonly connections: cloudwatch.Metric;
}

/**
 * The database behind a `ReadReplicaRouter`: created with secure defaults, or adopted.
 */
export abstract class RouterDatabase {
  /**
   * A new Aurora cluster (Serverless v2): a writer and readers, encrypted, 7 days of backups, IAM
   * authentication on, credentials in Secrets Manager (rotated every 30 days), no public access.
   */
  public static aurora(options: AuroraDatabaseOptions = {}): RouterDatabase {
    const readers = options.readers ?? 1;
    if (Token.isUnresolved(readers)) {
      // One reader instance is created per reader: their number cannot wait for deploy time.
      throw new Error(`RouterDatabase.aurora: readers must be a number known at synth (an integer from 1 to 15), got the token ${num(readers)}`);
    }
    if (!Number.isInteger(readers) || readers < 1 || readers > 15) {
      throw new Error(`RouterDatabase.aurora: readers must be an integer from 1 to 15, got ${readers}`);
    }
    return new CreatedAurora(options, readers);
  }

  /**
   * A new RDS instance (Multi-AZ) with one read replica, encrypted, 7 days of backups, IAM authentication
   * on, credentials in Secrets Manager (rotated every 30 days), no public access. RDS Proxy can front the
   * primary only: reads go to the replica directly.
   */
  public static instanceWithReplica(options: InstanceDatabaseOptions = {}): RouterDatabase {
    return new CreatedInstances(options);
  }

  /**
   * An existing Aurora cluster (writer and reader endpoints).
   */
  public static fromCluster(cluster: rds.IDatabaseCluster, options: AdoptedDatabaseOptions): RouterDatabase {
    return new AdoptedDatabase(clusterParts(cluster), options);
  }

  /**
   * An existing RDS primary and its read replica.
   */
  public static fromInstances(primary: rds.IDatabaseInstance, replica: rds.IDatabaseInstance, options: AdoptedDatabaseOptions): RouterDatabase {
    return new AdoptedDatabase(instanceParts(primary, replica), options);
  }

  /** @internal */
  public abstract _bind(scope: Construct, vpc: ec2.IVpc, subnets: ec2.SubnetSelection): BoundDatabase;
}

function portString(port: number): string {
  return Token.isUnresolved(port) ? Token.asString(port) : String(port);
}

function engineName(family: string | undefined): string {
  return family === 'MYSQL' ? 'mysql' : 'postgresql';
}

/** Server parameters that refuse connections without TLS. */
function requireTls(engineFamily: string | undefined): Record<string, string> {
  return engineFamily === 'MYSQL' ? { require_secure_transport: 'ON' } : { 'rds.force_ssl': '1' };
}

function acknowledgeDefaultPort(scope: Construct) {
  Validations.of(scope).acknowledge({
    id: 'AwsSolutions-RDS11',
    reason: 'Only the functions\' and the proxy\'s security groups may connect; a non-default port adds no protection '
      + 'and breaks tools that assume it.',
  });
}

class CreatedAurora extends RouterDatabase {
  constructor(private readonly options: AuroraDatabaseOptions, private readonly readers: number) {
    super();
  }

  public _bind(scope: Construct, vpc: ec2.IVpc, subnets: ec2.SubnetSelection): BoundDatabase {
    const databaseName = this.options.databaseName ?? 'app';
    const engine = this.options.engine ?? rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_13 });
    const cluster = new rds.DatabaseCluster(scope, 'Cluster', {
      engine,
      parameters: requireTls(engine.engineFamily),
      credentials: rds.Credentials.fromGeneratedSecret(ADMIN_USER),
      defaultDatabaseName: databaseName,
      vpc,
      vpcSubnets: subnets,
      writer: rds.ClusterInstance.serverlessV2('Writer'),
      readers: Array.from({ length: this.readers }, (_, i) => rds.ClusterInstance.serverlessV2(`Reader${i + 1}`, { scaleWithWriter: true })),
      serverlessV2MinCapacity: this.options.minCapacity ?? 0.5,
      serverlessV2MaxCapacity: this.options.maxCapacity ?? 4,
      storageEncrypted: true,
      iamAuthentication: true,
      backup: { retention: Duration.days(7) },
      deletionProtection: this.options.deletionProtection ?? deletionProtectionDefault(scope),
      removalPolicy: RemovalPolicy.SNAPSHOT,
    });
    cluster.addRotationSingleUser();
    acknowledgeDefaultPort(cluster);
    return { ...clusterParts(cluster), secret: cluster.secret!, databaseName, username: ADMIN_USER };
  }
}

class CreatedInstances extends RouterDatabase {
  constructor(private readonly options: InstanceDatabaseOptions) {
    super();
  }

  public _bind(scope: Construct, vpc: ec2.IVpc, subnets: ec2.SubnetSelection): BoundDatabase {
    const databaseName = this.options.databaseName ?? 'app';
    const instanceType = this.options.instanceType ?? ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MEDIUM);
    const deletionProtection = this.options.deletionProtection ?? deletionProtectionDefault(scope);
    const engine = this.options.engine ?? rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16_13 });
    const parameterGroup = new rds.ParameterGroup(scope, 'Parameters', { engine, parameters: requireTls(engine.engineFamily) });
    const primary = new rds.DatabaseInstance(scope, 'Primary', {
      engine,
      parameterGroup,
      credentials: rds.Credentials.fromGeneratedSecret(ADMIN_USER),
      databaseName,
      vpc,
      vpcSubnets: subnets,
      instanceType,
      allocatedStorage: this.options.allocatedStorage ?? 20,
      multiAz: true,
      storageEncrypted: true,
      iamAuthentication: true,
      backupRetention: Duration.days(7),
      deletionProtection,
      removalPolicy: RemovalPolicy.SNAPSHOT,
    });
    primary.addRotationSingleUser();
    const replica = new rds.DatabaseInstanceReadReplica(scope, 'Replica', {
      sourceDatabaseInstance: primary,
      parameterGroup,
      vpc,
      vpcSubnets: subnets,
      instanceType,
      storageEncrypted: true,
      iamAuthentication: true,
      deletionProtection,
      removalPolicy: RemovalPolicy.SNAPSHOT,
      securityGroups: primary.connections.securityGroups,
    });
    for (const instance of [primary, replica]) acknowledgeDefaultPort(instance);
    Validations.of(replica).acknowledge({
      id: 'AwsSolutions-RDS3',
      reason: 'A read replica is itself the redundancy for reads; the primary is Multi-AZ.',
    });
    Validations.of(replica).acknowledge({
      id: 'AwsSolutions-RDS13',
      reason: 'Backups are taken on the primary; a replica is rebuilt from it.',
    });
    return { ...instanceParts(primary, replica), secret: primary.secret!, databaseName, username: ADMIN_USER };
  }
}

/** An `AWS/RDS` metric, maximum by default: connections and lag matter at their peak. */
function rdsMaximum(metricName: string, dimensionsMap: Record<string, string>, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
  return new cloudwatch.Metric({ namespace: 'AWS/RDS', metricName, dimensionsMap, statistic: 'Maximum', ...props });
}

/** The parts of a bound database that follow from its cluster or instances alone. */
type DatabaseParts = Omit<BoundDatabase, 'secret' | 'databaseName' | 'username'>;

function clusterParts(cluster: rds.IDatabaseCluster): DatabaseParts {
  return {
    aurora: true,
    engineFamily: engineName(cluster.engine?.engineFamily),
    writer: cluster,
    reader: cluster,
    writerHost: cluster.clusterEndpoint.hostname,
    readerHost: cluster.clusterReadEndpoint.hostname,
    port: portString(cluster.clusterEndpoint.port),
    portNumber: cluster.clusterEndpoint.port,
    proxyTarget: rds.ProxyTarget.fromCluster(cluster),
    grantConnect: (grantee, user) => cluster.grantConnect(grantee, user),
    replicaLag: rdsMaximum('AuroraReplicaLagMaximum', { DBClusterIdentifier: cluster.clusterIdentifier }),
    connections: rdsMaximum('DatabaseConnections', { DBClusterIdentifier: cluster.clusterIdentifier }),
  };
}

function instanceParts(primary: rds.IDatabaseInstance, replica: rds.IDatabaseInstance): DatabaseParts {
  return {
    aurora: false,
    engineFamily: engineName(primary.engine?.engineFamily),
    writer: primary,
    reader: replica,
    writerHost: primary.dbInstanceEndpointAddress,
    readerHost: replica.dbInstanceEndpointAddress,
    port: primary.dbInstanceEndpointPort,
    portNumber: Token.asNumber(primary.dbInstanceEndpointPort),
    proxyTarget: rds.ProxyTarget.fromInstance(primary),
    grantConnect: (grantee, user) => {
      primary.grantConnect(grantee, user);
      replica.grantConnect(grantee, user);
    },
    replicaLag: rdsMaximum('ReplicaLag', { DBInstanceIdentifier: replica.instanceIdentifier }),
    connections: rdsMaximum('DatabaseConnections', { DBInstanceIdentifier: primary.instanceIdentifier }),
  };
}

class AdoptedDatabase extends RouterDatabase {
  constructor(private readonly parts: DatabaseParts, private readonly options: AdoptedDatabaseOptions) {
    super();
  }

  public _bind(): BoundDatabase {
    return { ...this.parts, secret: this.options.secret, databaseName: this.options.databaseName, username: this.options.username };
  }
}

/**
 * The database of a `ReadReplicaRouter` and how functions reach it (the VPC aside).
 */
export interface ReadReplicaRouterOptions {
  /** The database: `RouterDatabase.aurora()`, `instanceWithReplica()`, `fromCluster()` or `fromInstances()`. */
  readonly database: RouterDatabase;

  /**
   * Put RDS Proxy in front of the writer, so environments scaling out share a connection pool instead of
   * opening a connection each.
   *
   * @default true
   */
  readonly proxy?: boolean;

  /**
   * A read-only proxy endpoint for the readers. Aurora only: RDS Proxy cannot front RDS read replicas.
   *
   * @default - true for Aurora with a proxy, false otherwise
   */
  readonly readerProxy?: boolean;

  /**
   * Authenticate with IAM (short-lived tokens) instead of the password in Secrets Manager.
   *
   * @default false
   */
  readonly iamAuthentication?: boolean;
}

/**
 * Properties of a `ReadReplicaRouter`.
 */
export interface ReadReplicaRouterProps extends ReadReplicaRouterOptions {
  /** The VPC of the database and the functions. */
  readonly vpc: ec2.IVpc;

  /**
   * Subnets of the database and the proxy.
   *
   * @default - the VPC's isolated subnets, or its private ones when it has none
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
}

/**
 * A database for web functions that read far more than they write: writes (and transactions) to the
 * writer, reads to replicas, through RDS Proxy by default, wired into the VPC for you.
 *
 * `WarmWebFunction({ database: router })` places the function in the VPC, opens exactly
 * function → proxy (or replica) → database, grants the secret or `rds-db:connect`, and sets the env
 * contract that `warm_web.django.databases()` and the Node `pg` router read: `DB_ENGINE`, `DB_WRITER_HOST`,
 * `DB_READER_HOST`, `DB_PORT`, `DB_NAME`, `DB_USER`, and `DB_SECRET_ARN` or `DB_IAM_AUTH`.
 */
export class ReadReplicaRouter extends Construct {
  /** The VPC. */
  public readonly vpc: ec2.IVpc;
  /** The proxy in front of the writer, when there is one. */
  public readonly proxy?: rds.DatabaseProxy;
  /** The database credentials. */
  public readonly secret: secretsmanager.ISecret;
  /** What functions are given to reach the database (the env contract). */
  public readonly environment: Record<string, string>;

  private readonly writer: ec2.IConnectable;
  private readonly reader: ec2.IConnectable;
  private readonly bound: BoundDatabase;
  private readonly iamAuthentication: boolean;

  constructor(scope: Construct, id: string, props: ReadReplicaRouterProps) {
    super(scope, id);
    this.vpc = props.vpc;
    const subnets = dataSubnets(props.vpc, props.vpcSubnets);
    const bound = props.database._bind(this, props.vpc, subnets);
    this.bound = bound;
    this.secret = bound.secret;
    this.iamAuthentication = props.iamAuthentication ?? false;
    const useProxy = props.proxy ?? true;
    if (props.readerProxy && !bound.aurora) {
      throw propError(this, 'readerProxy: RDS Proxy cannot front RDS read replicas (only Aurora readers); reads go to the replica directly');
    }
    if (props.readerProxy && !useProxy) {
      throw propError(this, 'readerProxy: needs proxy: true');
    }
    const readerProxy = props.readerProxy ?? (useProxy && bound.aurora);

    let writerHost = bound.writerHost;
    let readerHost = bound.readerHost;
    this.writer = bound.writer;
    this.reader = bound.reader;
    if (useProxy) {
      const proxySecurityGroup = new ec2.SecurityGroup(this, 'ProxySecurityGroup', {
        vpc: props.vpc,
        description: 'RDS Proxy: reached by the web functions, reaches the database',
        allowAllOutbound: false,
      });
      this.proxy = new rds.DatabaseProxy(this, 'Proxy', {
        proxyTarget: bound.proxyTarget,
        secrets: [bound.secret],
        vpc: props.vpc,
        vpcSubnets: subnets,
        securityGroups: [proxySecurityGroup],
        requireTLS: true,
        iamAuth: this.iamAuthentication,
      });
      writerHost = this.proxy.endpoint;
      this.writer = this.proxy;
      if (readerProxy) {
        readerHost = this.proxy.addEndpoint('ReaderEndpoint', {
          vpc: props.vpc,
          targetRole: rds.ProxyEndpointTargetRole.READ_ONLY,
          vpcSubnets: subnets,
          securityGroups: [proxySecurityGroup],
        }).endpoint;
        this.reader = this.proxy;
      }
    }

    this.environment = {
      DB_ENGINE: bound.engineFamily,
      DB_WRITER_HOST: writerHost,
      DB_READER_HOST: readerHost,
      DB_PORT: bound.port,
      DB_NAME: bound.databaseName,
      DB_USER: bound.username,
      ...(this.iamAuthentication ? { DB_IAM_AUTH: 'true' } : { DB_SECRET_ARN: bound.secret.secretArn }),
    };
  }

  /**
   * Lets a function in the VPC reach the writer and the readers: security groups and credentials.
   */
  public grantConnect(fn: lambda.IFunction): void {
    const port = ec2.Port.tcp(this.bound.portNumber);
    for (const target of new Set([this.writer, this.reader])) {
      target.connections.allowFrom(fn, port, 'web function');
    }
    if (this.iamAuthentication) {
      if (this.proxy) this.proxy.grantConnect(fn, this.bound.username);
      if (!this.proxy || this.reader !== this.proxy) this.bound.grantConnect(fn, this.bound.username);
    } else {
      this.secret.grantRead(fn);
    }
  }

  /**
   * Client connections pinned to one database connection (SET, advisory locks, temporary tables...):
   * pinned connections defeat the proxy's pooling.
   */
  public metricSessionPinned(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    if (!this.proxy) throw propError(this, 'metricSessionPinned: this router has no proxy');
    return this.proxyMetric('DatabaseConnectionsCurrentlySessionPinned', props);
  }

  /**
   * Connections the database holds: with a proxy, the proxy's pool (what proxy sharing keeps small);
   * without, the writer's connections.
   *
   * @default - maximum over 5 minutes
   */
  public metricDatabaseConnections(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    if (!this.proxy) return this.bound.connections.with(props ?? {});
    return this.proxyMetric('DatabaseConnections', props);
  }

  /**
   * Connections from functions to the proxy: about one per busy environment.
   *
   * @default - maximum over 5 minutes
   */
  public metricClientConnections(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    if (!this.proxy) throw propError(this, 'metricClientConnections: this router has no proxy');
    return this.proxyMetric('ClientConnections', props);
  }

  /** How far the readers are behind the writer (Aurora: milliseconds; RDS replicas: seconds). */
  public metricReplicaLag(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.bound.replicaLag.with(props ?? {});
  }

  /**
   * Alarms when more than `threshold` (default 0: any) connections stay pinned through the proxy, 3
   * five-minute periods in a row. Called again with the same options, it returns the same alarm.
   */
  public addSessionPinningAlarm(options: CountAlarmOptions = {}): cloudwatch.Alarm {
    const method = 'addSessionPinningAlarm';
    const threshold = checkThreshold(this, method, options.threshold ?? 0, (v) => v >= 0, 'is a count >= 0');
    return alarmOnce(this, {
      method,
      id: 'SessionPinningAlarm',
      metric: this.metricSessionPinned({ period: Duration.minutes(5) }),
      description: `Connections pinned through ${this.node.path}: look for SET, advisory locks or temp tables`,
      threshold,
      shownThreshold: num(threshold),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: options.evaluationPeriods ?? 3,
      datapointsToAlarm: options.datapointsToAlarm,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  /**
   * Alarms when the proxy's pool is nearly exhausted: its database connections stay above `threshold`
   * percent (1–100, default 90) of `MaxDatabaseConnectionsAllowed` for 3 five-minute periods, so requests
   * wait to borrow a connection. Needs a proxy: without one, the database's limit depends on its size and
   * is not published. Called again with the same options, it returns the same alarm.
   */
  public addConnectionSaturationAlarm(options: PercentAlarmOptions = {}): cloudwatch.Alarm {
    const method = 'addConnectionSaturationAlarm';
    if (!this.proxy) throw propError(this, `${method}: this router has no proxy`);
    const threshold = checkThreshold(this, method, options.threshold ?? 90, (v) => v >= 1 && v <= 100, 'is a percentage from 1 to 100');
    const period = Duration.minutes(5);
    return alarmOnce(this, {
      method,
      id: 'ConnectionSaturationAlarm',
      metric: new cloudwatch.MathExpression({
        expression: '100 * used / allowed',
        usingMetrics: {
          used: this.proxyMetric('DatabaseConnections', { period }),
          allowed: this.proxyMetric('MaxDatabaseConnectionsAllowed', { period, statistic: 'Minimum' }),
        },
        label: 'Proxy pool in use (%)',
        period,
      }),
      description: `The pool of ${this.node.path} is above ${num(threshold)} % of the connections the database allows`,
      threshold,
      shownThreshold: num(threshold),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: options.evaluationPeriods ?? 3,
      datapointsToAlarm: options.datapointsToAlarm,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  /**
   * Alarms when the readers fall behind the writer by more than `threshold` (default 1 second), 3
   * one-minute periods in a row. Aurora readers normally lag well under 100 ms and RDS replicas under a
   * second; while they lag, clients that just wrote read the writer (read-your-writes), so lag moves load
   * onto it, and other clients read older data. Called again with the same options, it returns the same alarm.
   */
  public addReplicaLagAlarm(options: DurationAlarmOptions = {}): cloudwatch.Alarm {
    const method = 'addReplicaLagAlarm';
    // Aurora reports milliseconds, RDS replicas seconds.
    const { value, shown } = durationIn(options.threshold ?? Duration.seconds(1), this.bound.aurora ? 'ms' : 's');
    checkThreshold(this, method, value, (v) => v > 0, 'is a duration above 0');
    return alarmOnce(this, {
      method,
      id: 'ReplicaLagAlarm',
      metric: this.metricReplicaLag({ period: Duration.minutes(1) }),
      description: `Readers of ${this.node.path} lag the writer by more than ${shown}`,
      threshold: value,
      shownThreshold: shown,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: options.evaluationPeriods ?? 3,
      datapointsToAlarm: options.datapointsToAlarm,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  private proxyMetric(metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return rdsMaximum(metricName, { ProxyName: this.proxy!.dbProxyName }, props);
  }
}
