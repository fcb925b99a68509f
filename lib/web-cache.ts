import { Duration, Names, Size, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { PercentAlarmOptions } from './alarm-options';
import { alarmOnce, checkThreshold } from './private/alarms';
import { num, propError } from './private/errors';
import { dataSubnets } from './private/subnets';

const PORT = 6379;
const APP_USER = 'app';

/**
 * Options of a serverless cache.
 */
export interface ServerlessCacheOptions {
  /**
   * The most data the cache may hold (1 to 5000 GiB).
   *
   * @default Size.gibibytes(10)
   */
  readonly maxDataStorage?: Size;

  /**
   * The most ElastiCache Processing Units per second (1000 to 15000000): caps the bill.
   *
   * @default 5000
   */
  readonly maxEcpuPerSecond?: number;
}

/**
 * Options of a node-based cache.
 */
export interface NodeCacheOptions {
  /**
   * The node type, e.g. `cache.t4g.small`.
   */
  readonly nodeType: string;

  /**
   * Replicas of the primary (1 to 5), each in another AZ where the subnets allow.
   *
   * @default 1
   */
  readonly replicas?: number;
}

/** What an engine made inside a `WebCache`. */
interface BoundCache {
  readonly endpointAddress: string;
  readonly endpointPort: string;
  /** The user in `CACHE_URL`. */
  readonly user: string;
  readonly hitRate: (period: Duration) => cloudwatch.IMetric;
}

/** What an engine is given to make the cache. */
interface CacheParts {
  readonly subnetIds: string[];
  readonly securityGroup: ec2.ISecurityGroup;
  readonly password: string;
  readonly uniqueName: string;
}

/**
 * The kind of ElastiCache (Valkey) behind a `WebCache`: serverless, or a replication group of nodes.
 */
export abstract class WebCacheEngine {
  /**
   * ElastiCache Serverless: no nodes to size, billed by data stored and ECPUs used, both capped here.
   * An `app` user with the password, and the built-in `default` user turned off.
   */
  public static serverless(options: ServerlessCacheOptions = {}): WebCacheEngine {
    return new ServerlessEngine(options);
  }

  /**
   * A node-based replication group: a primary and `replicas` in two or more AZs with automatic failover,
   * encrypted at rest and in transit, the password as its AUTH token. Cheaper than serverless under
   * steady load; it does not scale by itself.
   */
  public static nodes(options: NodeCacheOptions): WebCacheEngine {
    return new NodesEngine(options);
  }

  /** @internal */
  public abstract _bind(cache: WebCache, parts: CacheParts): BoundCache;
}

class ServerlessEngine extends WebCacheEngine {
  constructor(private readonly options: ServerlessCacheOptions) {
    super();
  }

  public _bind(scope: WebCache, parts: CacheParts): BoundCache {
    const maxEcpu = this.options.maxEcpuPerSecond ?? 5000;
    if (!Token.isUnresolved(maxEcpu) && (!Number.isInteger(maxEcpu) || maxEcpu < 1000 || maxEcpu > 15_000_000)) {
      throw propError(scope, `WebCacheEngine.serverless: maxEcpuPerSecond must be an integer from 1000 to 15000000, got ${maxEcpu}`);
    }
    const storage = this.options.maxDataStorage ?? Size.gibibytes(10);
    if (!storage.isUnresolved() && (storage.toGibibytes() < 1 || storage.toGibibytes() > 5000)) {
      throw propError(scope, `WebCacheEngine.serverless: maxDataStorage must be from 1 to 5000 GiB, got ${storage.toGibibytes()} GiB`);
    }
    // Valkey needs a user named "default" in every user group: this one can do nothing.
    const cacheUser = (constructId: string, userName: string, accessString: string) => new elasticache.CfnUser(scope, constructId, {
      engine: 'valkey',
      userId: `${parts.uniqueName}-${userName}`,
      userName,
      accessString,
      authenticationMode: { Type: 'password', Passwords: [parts.password] },
    });
    const defaultUser = cacheUser('DefaultUser', 'default', 'off -@all');
    const appUser = cacheUser('AppUser', APP_USER, 'on ~* +@all');
    const userGroup = new elasticache.CfnUserGroup(scope, 'Users', {
      engine: 'valkey',
      userGroupId: `${parts.uniqueName}-users`,
      userIds: [defaultUser.userId, appUser.userId],
    });
    userGroup.node.addDependency(defaultUser);
    userGroup.node.addDependency(appUser);
    const cache = new elasticache.CfnServerlessCache(scope, 'Resource', {
      serverlessCacheName: parts.uniqueName,
      engine: 'valkey',
      majorEngineVersion: '8',
      description: `cdk-warm-web cache ${scope.node.path}`,
      subnetIds: parts.subnetIds,
      securityGroupIds: [parts.securityGroup.securityGroupId],
      userGroupId: userGroup.userGroupId,
      cacheUsageLimits: {
        dataStorage: { maximum: storage.isUnresolved() ? storage.toGibibytes() : Math.ceil(storage.toGibibytes()), unit: 'GB' },
        ecpuPerSecond: { maximum: maxEcpu },
      },
      snapshotRetentionLimit: 1,
    });
    cache.node.addDependency(userGroup);
    return {
      endpointAddress: cache.attrEndpointAddress,
      endpointPort: cache.attrEndpointPort,
      user: APP_USER,
      hitRate: (period) => new cloudwatch.Metric({
        namespace: 'AWS/ElastiCache',
        metricName: 'CacheHitRate',
        dimensionsMap: { clusterId: cache.ref },
        statistic: 'Average',
        period,
      }),
    };
  }
}

class NodesEngine extends WebCacheEngine {
  constructor(private readonly options: NodeCacheOptions) {
    super();
  }

  public _bind(scope: WebCache, parts: CacheParts): BoundCache {
    const { nodeType } = this.options;
    if (!Token.isUnresolved(nodeType) && !/^cache\.[a-z0-9]+\.[a-z0-9]+$/.test(nodeType)) {
      throw propError(scope, `WebCacheEngine.nodes: nodeType must be an ElastiCache node type like cache.t4g.small, got '${nodeType}'`);
    }
    const replicas = this.options.replicas ?? 1;
    if (Token.isUnresolved(replicas)) {
      // The hit rate adds up each member's metrics: how many there are must be known at synth.
      throw propError(scope, `WebCacheEngine.nodes: replicas must be a number known at synth (an integer from 1 to 5), got the token ${num(replicas)}`);
    }
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) {
      throw propError(scope, `WebCacheEngine.nodes: replicas must be an integer from 1 to 5 (automatic failover needs one), got ${replicas}`);
    }
    const subnetGroup = new elasticache.CfnSubnetGroup(scope, 'SubnetGroup', {
      description: `cdk-warm-web cache ${scope.node.path}`,
      subnetIds: parts.subnetIds,
    });
    const group = new elasticache.CfnReplicationGroup(scope, 'Resource', {
      replicationGroupDescription: `cdk-warm-web cache ${scope.node.path}`,
      engine: 'valkey',
      engineVersion: '8.0',
      cacheNodeType: nodeType,
      numCacheClusters: 1 + replicas,
      automaticFailoverEnabled: true,
      multiAzEnabled: true,
      atRestEncryptionEnabled: true,
      transitEncryptionEnabled: true,
      authToken: parts.password,
      cacheSubnetGroupName: subnetGroup.ref,
      securityGroupIds: [parts.securityGroup.securityGroupId],
      port: PORT,
      snapshotRetentionLimit: 1,
    });
    group.node.addDependency(subnetGroup);
    Validations.of(group).acknowledge({
      id: 'AwsSolutions-AEC5',
      reason: 'Only the functions\' security groups may connect; a non-default port adds no protection.',
    });
    // A replication group reports per member cluster (<group>-001, -002, ...): reads may hit any.
    const members = Array.from({ length: 1 + replicas }, (_, i) => `${group.ref}-${String(i + 1).padStart(3, '0')}`);
    const sum = (prefix: string) => members.map((_, i) => `${prefix}${i}`).join(' + ');
    return {
      endpointAddress: group.attrPrimaryEndPointAddress,
      endpointPort: group.attrPrimaryEndPointPort,
      user: 'default', // AUTH token: Valkey's default user
      hitRate: (period) => {
        const usingMetrics: Record<string, cloudwatch.IMetric> = {};
        members.forEach((member, i) => {
          for (const [key, metricName] of [['h', 'CacheHits'], ['m', 'CacheMisses']]) {
            usingMetrics[`${key}${i}`] = new cloudwatch.Metric({
              namespace: 'AWS/ElastiCache', metricName, dimensionsMap: { CacheClusterId: member }, statistic: 'Sum', period,
            });
          }
        });
        return new cloudwatch.MathExpression({
          expression: `100 * (${sum('h')}) / (${sum('h')} + ${sum('m')})`,
          usingMetrics,
          label: 'Cache hit rate (%)',
          period,
        });
      },
    };
  }
}

/**
 * The kind of a `WebCache` (the VPC aside).
 */
export interface WebCacheOptions {
  /**
   * Serverless or node-based, with the options of each.
   *
   * @default WebCacheEngine.serverless()
   */
  readonly engine?: WebCacheEngine;
}

/**
 * Properties of a `WebCache`.
 */
export interface WebCacheProps extends WebCacheOptions {
  /** The VPC of the cache and the functions. */
  readonly vpc: ec2.IVpc;

  /**
   * Subnets of the cache endpoints.
   *
   * @default - the VPC's isolated subnets, or its private ones when it has none
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
}

/**
 * ElastiCache (Valkey) for repeated responses and sessions: serverless by default, or a node-based
 * replication group (`engine: WebCacheEngine.nodes({ nodeType })`). Reachable only from the web
 * functions' security groups, TLS in transit, and a password from Secrets Manager (serverless: an
 * `app` user, with the built-in `default` user turned off; node-based: the AUTH token).
 *
 * `WarmWebFunction({ cache })` opens the function's security group to it, grants the secret, and sets
 * `CACHE_URL` (`rediss://app@host:6379/0`, no password in it) and `CACHE_SECRET_ARN`; `warm_web.django.caches()`
 * combines the two.
 */
export class WebCache extends Construct {
  /** The VPC. */
  public readonly vpc: ec2.IVpc;
  /** The cache's security group. */
  public readonly connections: ec2.Connections;
  /** The password of the `app` user. */
  public readonly secret: secretsmanager.ISecret;
  /** The cache's endpoint address. */
  public readonly endpointAddress: string;
  /** The cache's endpoint port. */
  public readonly endpointPort: string;
  /** What functions are given to reach the cache (`CACHE_URL`, `CACHE_SECRET_ARN`). */
  public readonly environment: Record<string, string>;

  private readonly hitRate: (period: Duration) => cloudwatch.IMetric;

  constructor(scope: Construct, id: string, props: WebCacheProps) {
    super(scope, id);
    this.vpc = props.vpc;
    const subnets = props.vpc.selectSubnets(dataSubnets(props.vpc, props.vpcSubnets));
    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'ElastiCache: reached by the web functions only',
      allowAllOutbound: false,
    });
    this.connections = new ec2.Connections({ securityGroups: [securityGroup], defaultPort: ec2.Port.tcp(PORT) });

    this.secret = new secretsmanager.Secret(this, 'Password', {
      description: `Password of the '${APP_USER}' user of ${this.node.path}`,
      generateSecretString: { passwordLength: 32, excludePunctuation: true },
    });
    Validations.of(this.secret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason: 'CloudFormation writes this password into the ElastiCache user at deploy time; Secrets Manager rotation '
        + 'alone would not change the user, so it is rotated by regenerating the secret and redeploying.',
    });
    const bound = (props.engine ?? WebCacheEngine.serverless())._bind(this, {
      subnetIds: subnets.subnetIds,
      securityGroup,
      password: this.secret.secretValue.unsafeUnwrap(),
      uniqueName: Names.uniqueResourceName(this, { maxLength: 30, separator: '-' }).toLowerCase(),
    });
    this.hitRate = bound.hitRate;
    this.endpointAddress = bound.endpointAddress;
    this.endpointPort = bound.endpointPort;
    this.environment = {
      CACHE_URL: `rediss://${bound.user}@${this.endpointAddress}:${this.endpointPort}/0`,
      CACHE_SECRET_ARN: this.secret.secretArn,
    };
  }

  /** Lets a function in the VPC reach the cache and read its password. */
  public grantConnect(fn: lambda.IFunction): void {
    this.connections.allowDefaultPortFrom(fn, 'web function');
    this.secret.grantRead(fn);
  }

  /**
   * Share of key lookups that found the key, in percent.
   *
   * @param period the period of each data point
   * @default Duration.minutes(5)
   */
  public metricHitRate(period: Duration = Duration.minutes(5)): cloudwatch.IMetric {
    return this.hitRate(period);
  }

  /**
   * Alarms when fewer than `threshold` percent (above 0 and at most 100, default 50) of lookups hit, 4
   * fifteen-minute periods in a row: the cache is too small, keys expire too soon, or the app caches what
   * is never read again. Called again with the same options, it returns the same alarm.
   */
  public addHitRateAlarm(options: PercentAlarmOptions = {}): cloudwatch.Alarm {
    const method = 'addHitRateAlarm';
    const threshold = checkThreshold(this, method, options.threshold ?? 50, (v) => v > 0 && v <= 100, 'is a percentage above 0 and at most 100');
    return alarmOnce(this, {
      method,
      id: 'HitRateAlarm',
      metric: this.metricHitRate(Duration.minutes(15)),
      description: `Fewer than ${num(threshold)} % of lookups in ${this.node.path} hit for an hour`,
      threshold,
      shownThreshold: num(threshold),
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: options.evaluationPeriods ?? 4,
      datapointsToAlarm: options.datapointsToAlarm,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }
}
