import { Duration, Names, Size, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { alarmOnce } from './private/alarms';
import { dataSubnets } from './private/subnets';

const PORT = 6379;
const APP_USER = 'app';

/**
 * The size and kind of a `WebCache` (the VPC aside).
 */
export interface WebCacheOptions {
  /**
   * The most data the cache may hold.
   *
   * @default Size.gibibytes(10)
   */
  readonly maxDataStorage?: Size;

  /**
   * The most ElastiCache Processing Units per second (caps the bill).
   *
   * @default 5000
   */
  readonly maxEcpuPerSecond?: number;

  /**
   * Run a node-based replication group of this node type (e.g. `cache.t4g.small`) instead of a serverless
   * cache: a primary and a replica in two AZs with automatic failover, encrypted at rest and in transit,
   * AUTH token from Secrets Manager. `maxDataStorage` and `maxEcpuPerSecond` then do not apply.
   *
   * @default - serverless
   */
  readonly nodeType?: string;
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
 * replication group (`nodeType`). Reachable only from the web functions' security groups, TLS in
 * transit, and a password from Secrets Manager (serverless: an `app` user, with the built-in `default`
 * user turned off; node-based: the AUTH token).
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
    const maxEcpu = props.maxEcpuPerSecond ?? 5000;
    if (!Token.isUnresolved(maxEcpu) && (!Number.isInteger(maxEcpu) || maxEcpu < 1000 || maxEcpu > 15_000_000)) {
      throw new Error(`WebCache: maxEcpuPerSecond must be an integer from 1000 to 15000000, got ${maxEcpu}`);
    }
    const storage = props.maxDataStorage ?? Size.gibibytes(10);
    if (!storage.isUnresolved() && (storage.toGibibytes() < 1 || storage.toGibibytes() > 5000)) {
      throw new Error(`WebCache: maxDataStorage must be from 1 to 5000 GiB, got ${storage.toGibibytes()} GiB`);
    }
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
    const unique = Names.uniqueResourceName(this, { maxLength: 30, separator: '-' }).toLowerCase();
    const password = this.secret.secretValue.unsafeUnwrap();
    let user: string;
    if (props.nodeType) {
      const subnetGroup = new elasticache.CfnSubnetGroup(this, 'SubnetGroup', {
        description: `cdk-warm-web cache ${this.node.path}`,
        subnetIds: subnets.subnetIds,
      });
      const group = new elasticache.CfnReplicationGroup(this, 'Resource', {
        replicationGroupDescription: `cdk-warm-web cache ${this.node.path}`,
        engine: 'valkey',
        engineVersion: '8.0',
        cacheNodeType: props.nodeType,
        numCacheClusters: 2,
        automaticFailoverEnabled: true,
        multiAzEnabled: true,
        atRestEncryptionEnabled: true,
        transitEncryptionEnabled: true,
        authToken: password,
        cacheSubnetGroupName: subnetGroup.ref,
        securityGroupIds: [securityGroup.securityGroupId],
        port: PORT,
        snapshotRetentionLimit: 1,
      });
      group.node.addDependency(subnetGroup);
      Validations.of(group).acknowledge({
        id: 'AwsSolutions-AEC5',
        reason: 'Only the functions\' security groups may connect; a non-default port adds no protection.',
      });
      // A replication group reports per member cluster (<group>-001, -002): reads may hit either.
      const members = ['001', '002'].map((n) => `${group.ref}-${n}`);
      this.hitRate = (period) => {
        const usingMetrics: Record<string, cloudwatch.IMetric> = {};
        members.forEach((member, i) => {
          for (const name of ['CacheHits', 'CacheMisses']) {
            usingMetrics[`${name === 'CacheHits' ? 'h' : 'm'}${i}`] = new cloudwatch.Metric({
              namespace: 'AWS/ElastiCache', metricName: name, dimensionsMap: { CacheClusterId: member }, statistic: 'Sum', period,
            });
          }
        });
        return new cloudwatch.MathExpression({
          expression: '100 * (h0 + h1) / (h0 + h1 + m0 + m1)',
          usingMetrics,
          label: 'Cache hit rate (%)',
          period,
        });
      };
      this.endpointAddress = group.attrPrimaryEndPointAddress;
      this.endpointPort = group.attrPrimaryEndPointPort;
      user = 'default'; // AUTH token: Valkey's default user
    } else {
      // Valkey needs a user named "default" in every user group: this one can do nothing.
      const cacheUser = (constructId: string, userName: string, accessString: string) => new elasticache.CfnUser(this, constructId, {
        engine: 'valkey',
        userId: `${unique}-${userName}`,
        userName,
        accessString,
        authenticationMode: { Type: 'password', Passwords: [password] },
      });
      const defaultUser = cacheUser('DefaultUser', 'default', 'off -@all');
      const appUser = cacheUser('AppUser', APP_USER, 'on ~* +@all');
      const userGroup = new elasticache.CfnUserGroup(this, 'Users', {
        engine: 'valkey',
        userGroupId: `${unique}-users`,
        userIds: [defaultUser.userId, appUser.userId],
      });
      userGroup.node.addDependency(defaultUser);
      userGroup.node.addDependency(appUser);
      const cache = new elasticache.CfnServerlessCache(this, 'Resource', {
        serverlessCacheName: unique,
        engine: 'valkey',
        majorEngineVersion: '8',
        description: `cdk-warm-web cache ${this.node.path}`,
        subnetIds: subnets.subnetIds,
        securityGroupIds: [securityGroup.securityGroupId],
        userGroupId: userGroup.userGroupId,
        cacheUsageLimits: {
          dataStorage: { maximum: Math.ceil(storage.toGibibytes()), unit: 'GB' },
          ecpuPerSecond: { maximum: maxEcpu },
        },
        snapshotRetentionLimit: 1,
      });
      cache.node.addDependency(userGroup);
      this.hitRate = (period) => new cloudwatch.Metric({
        namespace: 'AWS/ElastiCache',
        metricName: 'CacheHitRate',
        dimensionsMap: { clusterId: cache.ref },
        statistic: 'Average',
        period,
      });
      this.endpointAddress = cache.attrEndpointAddress;
      this.endpointPort = cache.attrEndpointPort;
      user = APP_USER;
    }

    this.environment = {
      CACHE_URL: `rediss://${user}@${this.endpointAddress}:${this.endpointPort}/0`,
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
   * Alarms when fewer than `threshold` percent of lookups hit for an hour: the cache is too small,
   * keys expire too soon, or the app caches what is never read again.
   *
   * @param threshold hit rate in percent, 0–100
   * @default 50
   */
  public addHitRateAlarm(threshold: number = 50): cloudwatch.Alarm {
    if (!Token.isUnresolved(threshold) && (threshold <= 0 || threshold > 100)) {
      throw new Error(`addHitRateAlarm: threshold is a percentage above 0 and at most 100, got ${threshold}`);
    }
    return alarmOnce(this, 'HitRateAlarm', 'addHitRateAlarm', threshold, () => new cloudwatch.Alarm(this, 'HitRateAlarm', {
      metric: this.metricHitRate(Duration.minutes(15)),
      alarmDescription: `Fewer than ${threshold} % of lookups in ${this.node.path} hit for an hour`,
      threshold,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 4,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }));
  }
}
