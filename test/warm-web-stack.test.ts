import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Duration, Lazy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { RouterDatabase, WarmWebFunctionOptions, WarmWebStack, WarmWebStackProps, WebApp, WebCacheEngine, WebCode } from '../lib';

const codeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-stack-code-'));
fs.writeFileSync(path.join(codeDir, 'app.py'), 'app = None\n');

const web: WarmWebFunctionOptions = { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir) };

function stackWith(props: Partial<WarmWebStackProps> = {}) {
  const stack = new WarmWebStack(new App(), 'Site', { web, ...props });
  return { stack, get template() { return Template.fromStack(stack); } };
}

const full = () => stackWith({
  web: {
    ...web,
    warming: { concurrency: 3 },
    provisionedConcurrency: { minCapacity: 1, maxCapacity: 5 },
  },
  database: { database: RouterDatabase.aurora({ readers: 1 }) },
  cache: {},
});

/** Alarm descriptions, which name what each alarm watches. */
function alarmDescriptions(template: Template): string[] {
  return Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties.AlarmDescription as string);
}

/** The dashboard's widgets, with CloudFormation references replaced by 'REF'. */
function dashboardWidgets(template: Template): any[] {
  const dashboards = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
  expect(dashboards).toHaveLength(1);
  const parts: unknown[] = dashboards[0].Properties.DashboardBody['Fn::Join'][1];
  return JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'REF')).join('')).widgets;
}

function dashboardMetrics(template: Template): string[] {
  return dashboardWidgets(template).flatMap((w) => (w.properties.metrics ?? []).map((m: string[]) => m[1]));
}

function dashboardTitles(template: Template): string[] {
  return dashboardWidgets(template).map((w) => w.properties.markdown ?? w.properties.title);
}

describe('WarmWebStack with only a web function', () => {
  const { stack } = stackWith();
  const template = Template.fromStack(stack);

  test('has no VPC: nothing in it needs one', () => {
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: { WARM_WEB_APP: 'app:app' } },
      VpcConfig: Match.absent(),
    });
    expect(stack.vpc).toBeUndefined();
  });

  test('outputs the URL, the alarm topic and the dashboard', () => {
    expect(Object.keys(template.findOutputs('*')).sort()).toEqual(['AlarmTopicArn', 'DashboardUrl', expect.stringMatching(/^WebUrl/)].sort());
  });

  test('alarms on errors, throttles, p99 duration, cold starts and INIT, all notifying the topic', () => {
    const descriptions = alarmDescriptions(template);
    expect(descriptions).toHaveLength(5);
    for (const watched of [/failed/, /throttled/, /p99 duration .* 80 % of its 30 seconds timeout/, /cold starts/, /INIT .* above 8 seconds/]) {
      expect(descriptions.some((d) => watched.test(d))).toBe(true);
    }
    const topic = stack.resolve(stack.alarmTopic.topicArn);
    for (const alarm of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
      expect(alarm.Properties.AlarmActions).toEqual([topic]);
    }
    expect(stack.alarms).toHaveLength(5);
  });

  test('the alarm topic is encrypted with a rotated key that CloudWatch may use, and refuses plain HTTP', () => {
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      KeyPolicy: {
        Statement: Match.arrayWith([Match.objectLike({
          Principal: { Service: 'cloudwatch.amazonaws.com' },
          Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        })]),
      },
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });

  test('the dashboard shows requests, errors, throttles, duration, cold starts and INIT', () => {
    expect(new Set(dashboardMetrics(template))).toEqual(new Set(['Invocations', 'Errors', 'Throttles', 'Duration', 'ColdStart', 'InitDurationMs']));
    expect(dashboardTitles(template)).not.toContain('## Data tier');
  });

  test('the stack has termination protection by default', () => {
    expect(stack.terminationProtection).toBe(true);
  });

  test('no unacknowledged cdk-nag finding', () => {
    expect(new AwsSolutionsChecks().validateScope(stack).violations).toEqual([]);
  });
});

describe('WarmWebStack with the whole seed architecture', () => {
  const { stack } = full();
  const template = Template.fromStack(stack);

  test('a VPC over two AZs without NAT: isolated subnets, flow logs, the default security group closed', () => {
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    expect(stack.vpc!.isolatedSubnets).toHaveLength(4);
    expect(new Set(stack.vpc!.isolatedSubnets.map((s) => s.availabilityZone)).size).toBe(2);
    template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'ALL', LogDestinationType: 'cloud-watch-logs' });
    template.resourceCountIs('Custom::VpcRestrictDefaultSG', 1);
  });

  test('endpoints for what the functions call without NAT: S3, Secrets Manager, CloudWatch Logs, HTTPS from the VPC only', () => {
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway', ServiceName: Match.objectLike({}) });
    for (const service of ['secretsmanager', 'logs']) {
      template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
        VpcEndpointType: 'Interface',
        PrivateDnsEnabled: true,
        ServiceName: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([`.${service}`])] }),
      });
    }
    const endpointGroups = template.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: Match.stringLikeRegexp('Endpoint') } });
    expect(Object.keys(endpointGroups)).toHaveLength(2);
    for (const group of Object.values(endpointGroups)) {
      expect(group.Properties.SecurityGroupIngress).toEqual([expect.objectContaining({ CidrIp: '10.0.0.0/16', FromPort: 443, ToPort: 443 })]);
    }
  });

  test('the web function runs in the VPC with the database and cache contract', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      VpcConfig: Match.objectLike({ SubnetIds: Match.anyValue() }),
      Environment: {
        Variables: Match.objectLike({ DB_WRITER_HOST: Match.anyValue(), DB_READER_HOST: Match.anyValue(), CACHE_URL: Match.anyValue() }),
      },
    });
  });

  test('data at rest encrypted, TLS required, nothing public, deletion-protected', () => {
    template.hasResourceProperties('AWS::RDS::DBCluster', { StorageEncrypted: true, DeletionProtection: true });
    template.hasResourceProperties('AWS::RDS::DBClusterParameterGroup', { Parameters: { 'rds.force_ssl': '1' } });
    template.hasResourceProperties('AWS::RDS::DBInstance', { PubliclyAccessible: false });
    template.hasResourceProperties('AWS::RDS::DBProxy', { RequireTLS: true });
    template.hasResource('AWS::RDS::DBCluster', { DeletionPolicy: 'Snapshot' });
    template.hasResourceProperties('AWS::ElastiCache::ServerlessCache', { SecurityGroupIds: Match.anyValue() });
    for (const group of Object.values(template.findResources('AWS::EC2::SecurityGroup'))) {
      for (const rule of group.Properties.SecurityGroupIngress ?? []) {
        expect(rule.CidrIp).not.toBe('0.0.0.0/0');
      }
    }
    for (const logGroup of Object.values(template.findResources('AWS::Logs::LogGroup'))) {
      expect(logGroup.Properties.RetentionInDays).toBeGreaterThan(0);
      expect(logGroup.DeletionPolicy).toBe('Retain');
    }
  });

  test('outputs the URL and the database and cache endpoints', () => {
    const outputs = Object.keys(template.findOutputs('*'));
    for (const name of ['DatabaseWriterEndpoint', 'DatabaseReaderEndpoint', 'CacheEndpoint', 'AlarmTopicArn', 'DashboardUrl']) {
      expect(outputs).toContain(name);
    }
    expect(outputs.some((o) => o.startsWith('WebUrl'))).toBe(true);
  });

  test('alarms on warm coverage, provisioned concurrency, the database and the cache too', () => {
    const descriptions = alarmDescriptions(template);
    for (const watched of [
      /Fewer warm environments/, /Warm pings .* throttled/, /nearly exhausted/, // warmer, provisioned concurrency
      /pinned/, /pool .* above 90 %/, /lag the writer/, // database
      /lookups .* hit/, // cache
    ]) {
      expect(descriptions.filter((d) => watched.test(d))).toHaveLength(1);
    }
    // Warmed beyond provisioned concurrency, spill-over is expected, not alarming.
    expect(descriptions.some((d) => /spilled over/.test(d))).toBe(false);
    expect(descriptions).toHaveLength(5 + 3 + 3 + 1);
    expect(stack.alarms).toHaveLength(descriptions.length);
  });

  test('the dashboard has a row for the data tier', () => {
    expect(dashboardMetrics(template)).toEqual(expect.arrayContaining([
      'WarmCoverage', 'ProvisionedConcurrencyUtilization', 'ProvisionedConcurrencySpilloverInvocations',
      'DatabaseConnections', 'ClientConnections', 'DatabaseConnectionsCurrentlySessionPinned', 'AuroraReplicaLagMaximum', 'CacheHitRate',
    ]));
    expect(dashboardTitles(template)).toContain('## Data tier');
  });

  test('no unacknowledged cdk-nag finding', () => {
    expect(new AwsSolutionsChecks().validateScope(stack).violations).toEqual([]);
  });

  test('alarm helpers the stack already called return its alarm; another threshold is refused', () => {
    const { stack: s } = full();
    // Counted in the construct tree: a template cannot be synthesized twice.
    const count = () => s.node.findAll().filter((c) => c instanceof cloudwatch.Alarm).length;
    const before = count();
    const coverage = s.web.node.findChild('WarmCoverageAlarm');
    expect(s.web.addWarmCoverageAlarm()).toBe(coverage);
    expect(s.web.addWarmThrottleAlarm()).toBe(s.web.node.findChild('WarmThrottleAlarm'));
    expect(s.web.provisionedAutoScaling!.addUtilizationAlarm()).toBe(s.web.provisionedAutoScaling!.node.findChild('UtilizationAlarm'));
    expect(s.database!.addReplicaLagAlarm()).toBe(s.database!.node.findChild('ReplicaLagAlarm'));
    expect(s.cache!.addHitRateAlarm({ threshold: 50 })).toBe(s.cache!.node.findChild('HitRateAlarm'));
    // Spill-over is not alarmed by the stack when warmed: the first call adds it, the second returns it.
    const spillover = s.web.provisionedAutoScaling!.addSpilloverAlarm();
    expect(s.web.provisionedAutoScaling!.addSpilloverAlarm()).toBe(spillover);
    expect(count()).toBe(before + 1);
    expect(alarmDescriptions(Template.fromStack(s)).filter((d) => /spilled over/.test(d))).toHaveLength(1);
    expect(() => s.web.provisionedAutoScaling!.addUtilizationAlarm({ threshold: 0.5 }))
      .toThrow(/addUtilizationAlarm: Site\/Web\/ProvisionedConcurrency already has this alarm, with threshold 0.9; got 0.5/);
    expect(() => s.cache!.addHitRateAlarm({ threshold: 80 })).toThrow(/addHitRateAlarm: Site\/Cache already has this alarm, with threshold 50; got 80/);
  });

  test('addWebFunction: another function on the same database and cache, with its own row and alarms', () => {
    const { stack: s } = full();
    const before = s.alarms.length;
    const admin = s.addWebFunction('Admin', { ...web, timeout: Duration.seconds(10) });
    expect(s.alarms.length - before).toBe(5);
    const t = Template.fromStack(s);
    const env = t.toJSON().Resources[s.getLogicalId(admin.lambdaFunction.node.defaultChild as any)].Properties.Environment.Variables;
    expect(Object.keys(env)).toEqual(expect.arrayContaining(['DB_WRITER_HOST', 'CACHE_URL']));
    expect(alarmDescriptions(t).some((d) => /Admin.* 80 % of its 10 seconds timeout/.test(d))).toBe(true);
    expect(dashboardTitles(t)).toContain('## Web function Site/Admin');
  });
});

describe('WarmWebStack options', () => {
  test('deletionProtection: false lets the stack, the database and the logs go', () => {
    const { stack, template } = stackWith({ database: { database: RouterDatabase.aurora() }, deletionProtection: false });
    expect(stack.terminationProtection).toBe(false);
    template.hasResourceProperties('AWS::RDS::DBCluster', { DeletionProtection: false });
    for (const logGroup of Object.values(template.findResources('AWS::Logs::LogGroup'))) {
      expect(logGroup.DeletionPolicy).toBe('Delete');
    }
  });

  test("a database's own deletionProtection wins over the stack's", () => {
    const { template } = stackWith({ database: { database: RouterDatabase.aurora({ deletionProtection: true }) }, deletionProtection: false });
    template.hasResourceProperties('AWS::RDS::DBCluster', { DeletionProtection: true });
  });

  test('natGateways: public subnets for NAT, functions in private subnets, data in isolated ones, no interface endpoints', () => {
    const { stack, template } = stackWith({ cache: {}, natGateways: 1 });
    template.resourceCountIs('AWS::EC2::NatGateway', 1);
    template.resourcePropertiesCountIs('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Interface' }, 0);
    const privateIds = stack.resolve(stack.vpc!.privateSubnets.map((s) => s.subnetId));
    const isolatedIds = stack.resolve(stack.vpc!.isolatedSubnets.map((s) => s.subnetId));
    template.hasResourceProperties('AWS::Lambda::Function', { VpcConfig: { SubnetIds: privateIds } });
    template.hasResourceProperties('AWS::ElastiCache::ServerlessCache', { SubnetIds: isolatedIds });
  });

  test('natGateways: 0 without a database or cache is simply no VPC', () => {
    expect(stackWith({ natGateways: 0 }).stack.vpc).toBeUndefined();
  });

  test('an alarm topic of the caller replaces the stack\'s own', () => {
    const app = new App();
    const ops = sns.Topic.fromTopicArn(new Stack(app, 'Ops'), 'Topic', 'arn:aws:sns:us-east-1:123456789012:ops');
    const topicStack = new WarmWebStack(app, 'WithTopic', { web, alarmTopic: ops });
    const template = Template.fromStack(topicStack);
    template.resourceCountIs('AWS::SNS::Topic', 0);
    template.resourceCountIs('AWS::KMS::Key', 0);
    for (const alarm of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
      expect(alarm.Properties.AlarmActions).toEqual(['arn:aws:sns:us-east-1:123456789012:ops']);
    }
  });

  test('provisioned concurrency without a warmer: spill-over means a cold start, so it alarms', () => {
    const { template } = stackWith({ web: { ...web, provisionedConcurrency: { minCapacity: 2, maxCapacity: 4 } } });
    const descriptions = alarmDescriptions(template);
    expect(descriptions.filter((d) => /spilled over|nearly exhausted/.test(d))).toHaveLength(2);
  });

  test('a node-based cache: the hit rate combines both nodes', () => {
    const { template } = stackWith({ cache: { engine: WebCacheEngine.nodes({ nodeType: 'cache.t4g.small' }) } });
    const alarm = Object.values(template.findResources('AWS::CloudWatch::Alarm')).find((a) => /lookups/.test(a.Properties.AlarmDescription));
    expect(alarm!.Properties.Metrics[0].Expression).toBe('100 * (h0 + h1) / (h0 + h1 + m0 + m1)');
    expect(alarm!.Properties.Metrics).toHaveLength(5);
  });

  test('without a proxy there is no pool to watch: pinning and saturation alarms are left out', () => {
    const { template } = stackWith({ database: { database: RouterDatabase.aurora(), proxy: false } });
    const descriptions = alarmDescriptions(template);
    expect(descriptions.some((d) => /pinned|pool/.test(d))).toBe(false);
    expect(descriptions.some((d) => /lag the writer/.test(d))).toBe(true);
  });

  test.each([
    [{ natGateways: 3, cache: {} }, /natGateways must be 0, 1 or 2 .*got 3/],
    [{ natGateways: 1.5, cache: {} }, /natGateways must be 0, 1 or 2 .*got 1.5/],
    [{ natGateways: 1 }, /natGateways is 1, but without a database or cache the stack has no VPC/],
    [{ coldStartAlarmThreshold: 0 }, /coldStartAlarmThreshold must be at least 1, got 0/],
    [{ natGateways: 3, cache: {} }, /^Site: natGateways must be 0, 1 or 2/],
    [{ coldStartAlarmThreshold: 5, monitoring: { functions: { coldStartsAlarm: { threshold: 5 } } } }, /^Site: coldStartAlarmThreshold: give it or monitoring.functions.coldStartsAlarm, not both/],
  ] as Array<[Partial<WarmWebStackProps>, RegExp]>)('rejects %j', (props, message) => {
    expect(() => stackWith(props)).toThrow(message);
  });

  test('natGateways from a token is refused: it sets the subnets; the message shows no number', () => {
    const make = () => stackWith({ natGateways: Lazy.number({ produce: () => 1 }), cache: {} });
    expect(make).toThrow(/^Site: natGateways must be a number known at synth/);
    expect(make).not.toThrow(/e\+/);
  });

  test('coldStartAlarmThreshold from a token is an alarm threshold, never a number in a description', () => {
    const { template } = stackWith({ coldStartAlarmThreshold: Lazy.number({ produce: () => 30 }) });
    expect(JSON.stringify(template.toJSON())).not.toMatch(/e\+/);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { Threshold: 30, AlarmDescription: Match.stringLikeRegexp('More than 30 cold starts') });
  });

  test('monitoring: thresholds for every function, the database and the cache, in one shape', () => {
    const { stack } = stackWith({
      web: { ...web, warming: { concurrency: 2 } },
      database: { database: RouterDatabase.aurora() },
      cache: {},
      monitoring: {
        functions: { coldStartsAlarm: { threshold: 40 }, warmCoverageAlarm: { threshold: 0.5, evaluationPeriods: 6 } },
        database: { replicaLagAlarm: { threshold: Duration.seconds(1) } },
        cache: { hitRateAlarm: { threshold: 30 } },
      },
    });
    const admin = stack.addWebFunction('Admin', web);
    const t = Template.fromStack(stack);
    expect(Object.keys(t.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'ColdStart', Threshold: 40 } }))).toHaveLength(2);
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'WarmCoverage', Threshold: 0.5, EvaluationPeriods: 6 });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'AuroraReplicaLagMaximum', Threshold: 1000 });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmDescription: Match.stringLikeRegexp('Fewer than 30 %'), Threshold: 30 });
    expect(stack.monitoring.alarms).toBe(stack.alarms);
    expect(admin.node.findChild('ColdStartsAlarm')).toBeInstanceOf(cloudwatch.Alarm);
    expect(dashboardTitles(t).filter((x) => x.startsWith('## '))).toEqual(['## Web function Site/Web', '## Data tier', '## Web function Site/Admin']);
  });
});
