import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Duration, Lazy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ReadReplicaRouter, ReadReplicaRouterProps, RouterDatabase, WarmWebFunction, WebApp, WebCode } from '../lib';

const codeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-code-'));
fs.writeFileSync(path.join(codeDir, 'app.py'), 'app = None\n');

function routerStack(props: Partial<ReadReplicaRouterProps> = {}, vpcProps: ec2.VpcProps = {}) {
  const stack = new Stack(new App(), 'TestStack');
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    natGateways: 0, subnetConfiguration: [{ name: 'db', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }], flowLogs: { all: {} }, ...vpcProps,
  });
  const router = new ReadReplicaRouter(stack, 'Db', { vpc, database: RouterDatabase.aurora(), ...props });
  const fn = new WarmWebFunction(stack, 'Web', { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir), database: router });
  return { stack, router, fn, get template() { return Template.fromStack(stack); } };
}

function envOf(template: Template): Record<string, unknown> {
  const fns = template.findResources('AWS::Lambda::Function', { Properties: { Handler: 'warm_web.handler.handler' } });
  return Object.values(fns)[0].Properties.Environment.Variables;
}

describe('ReadReplicaRouter with Aurora', () => {
  const { stack, router, template } = routerStack();
  void router;

  test('creates an encrypted Serverless v2 cluster with a writer and a reader, IAM auth on, deletion-protected', () => {
    template.hasResourceProperties('AWS::RDS::DBCluster', {
      Engine: 'aurora-postgresql',
      StorageEncrypted: true,
      EnableIAMDatabaseAuthentication: true,
      DeletionProtection: true,
      BackupRetentionPeriod: 7,
      ServerlessV2ScalingConfiguration: { MinCapacity: 0.5, MaxCapacity: 4 },
    });
    template.resourceCountIs('AWS::RDS::DBInstance', 2);
    template.hasResourceProperties('AWS::RDS::DBInstance', { PubliclyAccessible: false });
    template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', { RotationRules: { ScheduleExpression: 'rate(30 days)' } });
  });

  test('RDS Proxy on the writer, requiring TLS, and a READ_ONLY endpoint for the readers', () => {
    template.hasResourceProperties('AWS::RDS::DBProxy', { RequireTLS: true, EngineFamily: 'POSTGRESQL' });
    template.hasResourceProperties('AWS::RDS::DBProxyEndpoint', { TargetRole: 'READ_ONLY' });
  });

  test('the function runs in the VPC with the env contract pointing at the proxy endpoints', () => {
    const env = envOf(template);
    const [proxyId] = Object.keys(template.findResources('AWS::RDS::DBProxy'));
    const [endpointId] = Object.keys(template.findResources('AWS::RDS::DBProxyEndpoint'));
    expect(env).toMatchObject({
      DB_ENGINE: 'postgresql',
      DB_WRITER_HOST: { 'Fn::GetAtt': [proxyId, 'Endpoint'] },
      DB_READER_HOST: { 'Fn::GetAtt': [endpointId, 'Endpoint'] },
      DB_NAME: 'app',
      DB_USER: 'app_admin',
      DB_SECRET_ARN: expect.anything(),
    });
    expect(env.DB_IAM_AUTH).toBeUndefined();
    template.hasResourceProperties('AWS::Lambda::Function', { Handler: 'warm_web.handler.handler', VpcConfig: Match.objectLike({ SubnetIds: Match.anyValue() }) });
    expect(router.environment.DB_ENGINE).toBe('postgresql');
  });

  test('security groups: function -> proxy -> database only', () => {
    const [proxySg] = Object.keys(template.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: Match.stringLikeRegexp('RDS Proxy') } }));
    const [fnSg] = Object.keys(template.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: Match.stringLikeRegexp('Automatic security group for Lambda') } }));
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: { 'Fn::GetAtt': [proxySg, 'GroupId'] },
      SourceSecurityGroupId: { 'Fn::GetAtt': [fnSg, 'GroupId'] },
      IpProtocol: 'tcp',
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      SourceSecurityGroupId: { 'Fn::GetAtt': [proxySg, 'GroupId'] },
      Description: 'Allow connections to the database Cluster from the Proxy',
    });
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress'));
    expect(ingress.every((r) => r.Properties.CidrIp === undefined)).toBe(true);
    const open = Object.values(template.findResources('AWS::EC2::SecurityGroup')).flatMap((g) => g.Properties.SecurityGroupIngress ?? []);
    expect(open.filter((r: { CidrIp?: string }) => r.CidrIp === '0.0.0.0/0')).toEqual([]);
  });

  test('the function may read the secret', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'] })]) },
    });
  });

  test('alarms: pinned sessions, replica lag in milliseconds', () => {
    const fresh = routerStack();
    fresh.router.addSessionPinningAlarm();
    fresh.router.addReplicaLagAlarm();
    const t = Template.fromStack(fresh.stack);
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'DatabaseConnectionsCurrentlySessionPinned', Threshold: 0 });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'AuroraReplicaLagMaximum', Threshold: 1000 });
  });

  test('the cluster refuses connections without TLS', () => {
    template.hasResourceProperties('AWS::RDS::DBClusterParameterGroup', { Family: 'aurora-postgresql16', Parameters: { 'rds.force_ssl': '1' } });
  });

  test('metrics: the proxy pool, its clients and pinned sessions', () => {
    const fresh = routerStack();
    const dims = (m: { dimensions?: Record<string, unknown> }) => fresh.stack.resolve(m.dimensions);
    const proxyName = fresh.stack.resolve(fresh.router.proxy!.dbProxyName);
    expect(fresh.router.metricDatabaseConnections().metricName).toBe('DatabaseConnections');
    expect(dims(fresh.router.metricDatabaseConnections())).toEqual({ ProxyName: proxyName });
    expect(fresh.router.metricClientConnections().metricName).toBe('ClientConnections');
    expect(dims(fresh.router.metricSessionPinned())).toEqual({ ProxyName: proxyName });
  });

  test('connection saturation alarm: the pool against MaxDatabaseConnectionsAllowed', () => {
    const fresh = routerStack();
    fresh.router.addConnectionSaturationAlarm({ threshold: 80 });
    const t = Template.fromStack(fresh.stack);
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Threshold: 80,
      Metrics: Match.arrayWith([
        Match.objectLike({ Expression: '100 * used / allowed' }),
        Match.objectLike({ Id: 'allowed', MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: 'MaxDatabaseConnectionsAllowed' }) }) }),
      ]),
    });
    expect(() => fresh.router.addConnectionSaturationAlarm({ threshold: 0 })).toThrow(/threshold is a percentage from 1 to 100, got 0/);
  });

  test('no unacknowledged cdk-nag finding', () => {
    expect(new AwsSolutionsChecks().validateScope(stack).violations).toEqual([]);
  });
});

describe('ReadReplicaRouter with an RDS instance and replica', () => {
  const { stack, template } = routerStack({ database: RouterDatabase.instanceWithReplica() });

  test('a Multi-AZ primary and a replica; the proxy fronts the primary, reads go to the replica directly', () => {
    template.hasResourceProperties('AWS::RDS::DBInstance', { MultiAZ: true, StorageEncrypted: true, Engine: 'postgres' });
    template.hasResourceProperties('AWS::RDS::DBInstance', { SourceDBInstanceIdentifier: Match.anyValue() });
    template.resourceCountIs('AWS::RDS::DBProxyEndpoint', 0);
    const [replicaId] = Object.keys(template.findResources('AWS::RDS::DBInstance', { Properties: { SourceDBInstanceIdentifier: Match.anyValue() } }));
    expect(envOf(template).DB_READER_HOST).toEqual({ 'Fn::GetAtt': [replicaId, 'Endpoint.Address'] });
  });

  test('primary and replica share a parameter group that refuses connections without TLS', () => {
    const groups = template.findResources('AWS::RDS::DBParameterGroup', { Properties: { Parameters: { 'rds.force_ssl': '1' } } });
    expect(Object.keys(groups)).toHaveLength(1);
    const instances = Object.values(template.findResources('AWS::RDS::DBInstance'));
    expect(instances).toHaveLength(2);
    for (const instance of instances) expect(instance.Properties.DBParameterGroupName).toEqual({ Ref: Object.keys(groups)[0] });
  });

  test('no unacknowledged cdk-nag finding', () => {
    expect(new AwsSolutionsChecks().validateScope(stack).violations).toEqual([]);
  });
});

describe('ReadReplicaRouter options and errors', () => {
  test('IAM authentication: rds-db:connect instead of the secret, DB_IAM_AUTH set', () => {
    const { template } = routerStack({ iamAuthentication: true });
    template.hasResourceProperties('AWS::RDS::DBProxy', { Auth: [Match.objectLike({ IAMAuth: 'REQUIRED' })] });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: 'rds-db:connect' })]) },
    });
    expect(envOf(template)).toMatchObject({ DB_IAM_AUTH: 'true' });
    expect(envOf(template).DB_SECRET_ARN).toBeUndefined();
  });

  test('without a proxy: connections are the database\'s own; the proxy-only metrics and alarms say why they cannot be', () => {
    const { stack, router } = routerStack({ proxy: false, database: RouterDatabase.instanceWithReplica() });
    const metric = router.metricDatabaseConnections();
    expect(Object.keys(stack.resolve(metric.dimensions))).toEqual(['DBInstanceIdentifier']);
    expect(() => router.metricClientConnections()).toThrow(/metricClientConnections: this router has no proxy/);
    expect(() => router.addConnectionSaturationAlarm()).toThrow(/addConnectionSaturationAlarm: this router has no proxy/);
  });

  test('Aurora MySQL requires TLS with its own parameter', () => {
    const { template } = routerStack({
      database: RouterDatabase.aurora({ engine: rds.DatabaseClusterEngine.auroraMysql({ version: rds.AuroraMysqlEngineVersion.VER_3_08_0 }) }),
    });
    template.hasResourceProperties('AWS::RDS::DBClusterParameterGroup', { Parameters: { require_secure_transport: 'ON' } });
  });

  test('deletion protection follows the context a WarmWebStack sets, unless the options say', () => {
    const context = (value: boolean, options = {}) => {
      const app = new App({ context: { '@cdk-warm-web/deletionProtection': value } });
      const stack = new Stack(app, 'S');
      const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'db', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
      new ReadReplicaRouter(stack, 'Db', { vpc, database: RouterDatabase.instanceWithReplica(options) });
      return Object.values(Template.fromStack(stack).findResources('AWS::RDS::DBInstance')).map((i) => i.Properties.DeletionProtection);
    };
    expect(context(false)).toEqual([false, false]);
    expect(context(true)).toEqual([true, true]);
    expect(context(false, { deletionProtection: true })).toEqual([true, true]);
  });

  test('without a proxy: the function reaches the cluster endpoints directly', () => {
    const { template } = routerStack({ proxy: false });
    template.resourceCountIs('AWS::RDS::DBProxy', 0);
    const [clusterId] = Object.keys(template.findResources('AWS::RDS::DBCluster'));
    expect(envOf(template)).toMatchObject({
      DB_WRITER_HOST: { 'Fn::GetAtt': [clusterId, 'Endpoint.Address'] },
      DB_READER_HOST: { 'Fn::GetAtt': [clusterId, 'ReadEndpoint.Address'] },
    });
  });

  test('adopting an existing cluster', () => {
    const stack = new Stack(new App(), 'TestStack');
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'db', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
    const cluster = rds.DatabaseCluster.fromDatabaseClusterAttributes(stack, 'Existing', {
      clusterIdentifier: 'prod',
      clusterEndpointAddress: 'w.example',
      readerEndpointAddress: 'r.example',
      port: 5432,
      securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(stack, 'Sg', 'sg-123')],
      engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_13 }),
    });
    const secret = secretsmanager.Secret.fromSecretNameV2(stack, 'Secret', 'prod/db');
    const router = new ReadReplicaRouter(stack, 'Db', { vpc, database: RouterDatabase.fromCluster(cluster, { secret, databaseName: 'shop', username: 'web' }) });
    new WarmWebFunction(stack, 'Web', { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir), database: router });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::RDS::DBCluster', 0);
    template.hasResourceProperties('AWS::RDS::DBProxyEndpoint', { TargetRole: 'READ_ONLY' });
    expect(envOf(template)).toMatchObject({ DB_NAME: 'shop', DB_USER: 'web', DB_PORT: '5432' });
  });

  test.each([
    [{ database: RouterDatabase.instanceWithReplica(), readerProxy: true }, /readerProxy: RDS Proxy cannot front RDS read replicas/],
    [{ proxy: false, readerProxy: true }, /readerProxy: needs proxy: true/],
  ])('rejects %#', (props, message) => {
    expect(() => routerStack(props as Partial<ReadReplicaRouterProps>)).toThrow(message);
  });

  test('readers out of range', () => {
    expect(() => RouterDatabase.aurora({ readers: 0 })).toThrow(/readers must be an integer from 1 to 15, got 0/);
  });

  test('a function environment that sets a DB_ variable of the contract', () => {
    const stack = new Stack(new App(), 'TestStack');
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'db', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
    const router = new ReadReplicaRouter(stack, 'Db', { vpc, database: RouterDatabase.aurora() });
    expect(() => new WarmWebFunction(stack, 'Web', { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir), database: router, environment: { DB_NAME: 'x' } }))
      .toThrow(/environment: DB_NAME is set by database or cache/);
  });

  test('a function in another VPC than the database', () => {
    const stack = new Stack(new App(), 'TestStack');
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'db', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
    const other = new ec2.Vpc(stack, 'Other', { natGateways: 0, subnetConfiguration: [{ name: 'db', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
    const router = new ReadReplicaRouter(stack, 'Db', { vpc, database: RouterDatabase.aurora() });
    expect(() => new WarmWebFunction(stack, 'Web', { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir), database: router, vpc: other }))
      .toThrow(/database: it is in VPC TestStack\/Vpc, but the function is in TestStack\/Other/);
  });
});

describe('ReadReplicaRouter errors name the construct; tokens are not numbers', () => {
  test('a validation error starts with the router\'s path', () => {
    expect(() => routerStack({ database: RouterDatabase.instanceWithReplica(), readerProxy: true }))
      .toThrow(/^TestStack\/Db: readerProxy: RDS Proxy cannot front RDS read replicas/);
  });

  test('alarm helpers take one options shape; tokens pass and never show as numbers', () => {
    const fresh = routerStack();
    const token = Lazy.number({ produce: () => 70 });
    fresh.router.addConnectionSaturationAlarm({ threshold: token, evaluationPeriods: 2 });
    fresh.router.addSessionPinningAlarm({ threshold: 5 });
    fresh.router.addReplicaLagAlarm({ threshold: Duration.seconds(2), datapointsToAlarm: 2 });
    expect(fresh.router.addReplicaLagAlarm({ threshold: Duration.seconds(2), datapointsToAlarm: 2 })).toBe(fresh.router.node.findChild('ReplicaLagAlarm'));
    expect(() => fresh.router.addReplicaLagAlarm({ threshold: Duration.seconds(3) }))
      .toThrow(/addReplicaLagAlarm: TestStack\/Db already has this alarm, with threshold 2 seconds; got 3 seconds/);
    const template = fresh.template;
    expect(JSON.stringify(template.toJSON())).not.toMatch(/e\+/);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmDescription: Match.stringLikeRegexp('above 70 %'), Threshold: 70, EvaluationPeriods: 2 });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'DatabaseConnectionsCurrentlySessionPinned', Threshold: 5 });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'AuroraReplicaLagMaximum', Threshold: 2000, DatapointsToAlarm: 2 });
  });

  test('readers must be known at synth: the message names the token, not a number', () => {
    expect(() => RouterDatabase.aurora({ readers: Lazy.number({ produce: () => 2 }) })).toThrow(/readers must be a number known at synth/);
    try {
      RouterDatabase.aurora({ readers: Lazy.number({ produce: () => 2 }) });
    } catch (e) {
      expect(String(e)).not.toMatch(/e\+/);
    }
  });
});
