import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Lazy, Size, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { AwsSolutionsChecks } from 'cdk-nag';
import { WarmWebFunction, WebApp, WebCache, WebCacheEngine, WebCacheProps, WebCode } from '../lib';

const codeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-code-'));
fs.writeFileSync(path.join(codeDir, 'app.py'), 'app = None\n');

function cacheStack(props: Partial<WebCacheProps> = {}) {
  const stack = new Stack(new App(), 'TestStack');
  const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }], flowLogs: { all: {} } });
  const cache = new WebCache(stack, 'Cache', { vpc, ...props });
  new WarmWebFunction(stack, 'Web', { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir), cache });
  return { stack, cache, get template() { return Template.fromStack(stack); } };
}

describe('WebCache', () => {
  const { stack, template } = cacheStack();

  test('ElastiCache Serverless Valkey with usage limits, in the isolated subnets', () => {
    template.hasResourceProperties('AWS::ElastiCache::ServerlessCache', {
      Engine: 'valkey',
      MajorEngineVersion: '8',
      CacheUsageLimits: { DataStorage: { Maximum: 10, Unit: 'GB' }, ECPUPerSecond: { Maximum: 5000 } },
      SubnetIds: Match.anyValue(),
      UserGroupId: Match.anyValue(),
    });
  });

  test('password auth from Secrets Manager; the default user can do nothing', () => {
    template.hasResourceProperties('AWS::ElastiCache::User', { UserName: 'default', AccessString: 'off -@all' });
    template.hasResourceProperties('AWS::ElastiCache::User', {
      UserName: 'app',
      AuthenticationMode: { Type: 'password', Passwords: [{ 'Fn::Join': ['', Match.arrayWith(['{{resolve:secretsmanager:'])] }] },
    });
  });

  test('only the function may connect, on 6379', () => {
    const [fnSg] = Object.keys(template.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: Match.stringLikeRegexp('Automatic security group for Lambda') } }));
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { SourceSecurityGroupId: { 'Fn::GetAtt': [fnSg, 'GroupId'] }, FromPort: 6379, ToPort: 6379 });
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress'));
    expect(ingress).toHaveLength(1);
  });

  test('the function gets CACHE_URL (TLS, no password) and CACHE_SECRET_ARN', () => {
    const fns = template.findResources('AWS::Lambda::Function', { Properties: { Handler: 'warm_web.handler.handler' } });
    const env = Object.values(fns)[0].Properties.Environment.Variables;
    expect(JSON.stringify(env.CACHE_URL)).toMatch(/rediss:\/\/app@/);
    expect(env.CACHE_SECRET_ARN).toEqual({ Ref: expect.stringMatching(/^CachePassword/) });
  });

  test('no unacknowledged cdk-nag finding', () => {
    expect(new AwsSolutionsChecks().validateScope(stack).violations).toEqual([]);
  });

  test('hit rate: the serverless cache\'s CacheHitRate; an alarm below 50 % for an hour', () => {
    const fresh = cacheStack();
    const metric = fresh.cache.metricHitRate() as any;
    expect(metric.metricName).toBe('CacheHitRate');
    expect(fresh.stack.resolve(metric.dimensions)).toEqual({ clusterId: { Ref: expect.stringMatching(/^Cache/) } });
    fresh.cache.addHitRateAlarm();
    Template.fromStack(fresh.stack).hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'CacheHitRate', Threshold: 50, Period: 900, EvaluationPeriods: 4, ComparisonOperator: 'LessThanThreshold',
    });
    expect(() => fresh.cache.addHitRateAlarm({ threshold: 120 })).toThrow(/threshold is a percentage above 0 and at most 100, got 120/);
  });

  test('node-based: a Multi-AZ replication group with encryption and an AUTH token', () => {
    const nodes = cacheStack({ engine: WebCacheEngine.nodes({ nodeType: 'cache.t4g.small' }) });
    nodes.template.resourceCountIs('AWS::ElastiCache::ServerlessCache', 0);
    nodes.template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      Engine: 'valkey',
      CacheNodeType: 'cache.t4g.small',
      NumCacheClusters: 2,
      MultiAZEnabled: true,
      AutomaticFailoverEnabled: true,
      AtRestEncryptionEnabled: true,
      TransitEncryptionEnabled: true,
      AuthToken: { 'Fn::Join': ['', Match.arrayWith(['{{resolve:secretsmanager:'])] },
    });
    const fns = nodes.template.findResources('AWS::Lambda::Function', { Properties: { Handler: 'warm_web.handler.handler' } });
    expect(JSON.stringify(Object.values(fns)[0].Properties.Environment.Variables.CACHE_URL)).toMatch(/rediss:\/\/default@/);
    expect(new AwsSolutionsChecks().validateScope(nodes.stack).violations).toEqual([]);
  });

  test.each([
    [{ engine: WebCacheEngine.serverless({ maxEcpuPerSecond: 10 }) }, /maxEcpuPerSecond must be an integer from 1000 to 15000000, got 10/],
    [{ engine: WebCacheEngine.serverless({ maxDataStorage: Size.gibibytes(6000) }) }, /maxDataStorage must be from 1 to 5000 GiB, got 6000 GiB/],
    [{ engine: WebCacheEngine.nodes({ nodeType: 't4g.small' }) }, /^TestStack\/Cache: WebCacheEngine.nodes: nodeType must be an ElastiCache node type like cache.t4g.small, got 't4g.small'/],
    [{ engine: WebCacheEngine.nodes({ nodeType: 'cache.t4g.small', replicas: 0 }) }, /replicas must be an integer from 1 to 5 .*got 0/],
    [{ engine: WebCacheEngine.nodes({ nodeType: 'cache.t4g.small', replicas: Lazy.number({ produce: () => 2 }) }) }, /replicas must be a number known at synth/],
  ])('rejects %#', (props, message) => {
    expect(() => cacheStack(props)).toThrow(message);
  });

  test('errors name the cache\'s path before the old text', () => {
    expect(() => cacheStack({ engine: WebCacheEngine.serverless({ maxEcpuPerSecond: 10 }) }))
      .toThrow(/^TestStack\/Cache: WebCacheEngine.serverless: maxEcpuPerSecond must be/);
  });

  test('nodes with more replicas: one member per node, all in the hit rate', () => {
    const nodes = cacheStack({ engine: WebCacheEngine.nodes({ nodeType: 'cache.r7g.large', replicas: 2 }) });
    nodes.cache.addHitRateAlarm();
    nodes.template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', { NumCacheClusters: 3, CacheNodeType: 'cache.r7g.large' });
    const alarm = Object.values(nodes.template.findResources('AWS::CloudWatch::Alarm'))[0];
    expect(alarm.Properties.Metrics[0].Expression).toBe('100 * (h0 + h1 + h2) / (h0 + h1 + h2 + m0 + m1 + m2)');
    expect(alarm.Properties.Metrics).toHaveLength(7);
  });

  test('tokenised limits and thresholds pass, and never show as numbers', () => {
    const fresh = cacheStack({
      engine: WebCacheEngine.serverless({
        maxEcpuPerSecond: Lazy.number({ produce: () => 9000 }),
        maxDataStorage: Size.gibibytes(Lazy.number({ produce: () => 20 })),
      }),
    });
    fresh.cache.addHitRateAlarm({ threshold: Lazy.number({ produce: () => 60 }) });
    expect(JSON.stringify(fresh.template.toJSON())).not.toMatch(/e\+/);
    fresh.template.hasResourceProperties('AWS::ElastiCache::ServerlessCache', {
      CacheUsageLimits: { DataStorage: { Maximum: 20, Unit: 'GB' }, ECPUPerSecond: { Maximum: 9000 } },
    });
    fresh.template.hasResourceProperties('AWS::CloudWatch::Alarm', { Threshold: 60, AlarmDescription: Match.stringLikeRegexp('Fewer than 60 %') });
  });

  test('hit-rate alarm: idempotent with the same options, refused with others', () => {
    const fresh = cacheStack();
    const alarm = fresh.cache.addHitRateAlarm({ threshold: 40, evaluationPeriods: 8 });
    expect(fresh.cache.addHitRateAlarm({ threshold: 40, evaluationPeriods: 8 })).toBe(alarm);
    expect(() => fresh.cache.addHitRateAlarm({ threshold: 40 })).toThrow(/with evaluationPeriods 8; got 4/);
  });
});
