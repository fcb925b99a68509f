import * as path from 'path';
import { App, Duration, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import { ReadReplicaRouter, RouterDatabase, WarmWebFunction, WarmWebMonitoring, WebApp, WebCache, WebCode } from '../../lib';
import { codeDirectory } from '../code-directory';

/**
 * The Django site of examples/django with Aurora PostgreSQL (a writer and a reader) behind RDS Proxy
 * (writer and read-only endpoints) and a Valkey cache, in a VPC without NAT: the functions reach
 * Secrets Manager through an interface endpoint. Composed by hand, without WarmWebStack: a
 * WarmWebMonitoring gives it the dashboard and alarms.
 */
export class DatabaseExampleStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'app', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
      flowLogs: { all: {} },
    });
    // Only the web function may use the endpoint (open: false), not the whole VPC.
    const secretsEndpoint = vpc.addInterfaceEndpoint('SecretsManager', { service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER, open: false });
    const database = new ReadReplicaRouter(this, 'Database', { vpc, database: RouterDatabase.aurora({ readers: 1 }) });
    const cache = new WebCache(this, 'Cache', { vpc });
    const web = new WarmWebFunction(this, 'Web', {
      app: WebApp.wsgi('mysite.wsgi:application'),
      code: WebCode.fromDirectory(codeDirectory(path.join(__dirname, '..', 'django')).directory),
      environment: { DJANGO_SETTINGS_MODULE: 'mysite.settings' },
      database,
      cache,
    });
    secretsEndpoint.connections.allowDefaultPortFrom(web.lambdaFunction, 'web function fetches database and cache secrets');

    const monitoring = new WarmWebMonitoring(this, 'Monitoring');
    monitoring.addFunction(web);
    monitoring.addRouter(database, { replicaLagAlarm: { threshold: Duration.seconds(2) } });
    monitoring.addCache(cache);
  }
}

if (require.main === module) {
  const app = new App();
  new DatabaseExampleStack(app, 'WarmWebDatabase');
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
}
