import * as path from 'path';
import { App, Annotations, Stack, StackProps, TimeZone, Validations } from 'aws-cdk-lib';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import { WarmWebFunction, WebApp, WebCode, WebCommand, WebCommandSchedule, WebDistribution, WebStaticFiles } from '../../lib';
import { codeDirectory } from '../code-directory';

/**
 * A Django site on a Function URL behind CloudFront, static files from S3; Django boots during INIT.
 * Expired sessions are cleared nightly.
 */
export class DjangoExampleStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    const { directory, packaged } = codeDirectory(__dirname);
    if (!packaged) {
      Annotations.of(this).addWarningV2('example:notPackaged', 'Django is not packaged: run examples/package.sh django before deploying');
    }
    const web = new WarmWebFunction(this, 'Web', {
      app: WebApp.wsgi('mysite.wsgi:application'),
      code: WebCode.fromDirectory(directory),
      environment: { DJANGO_SETTINGS_MODULE: 'mysite.settings' },
    });
    // collectstatic's output (STATIC_ROOT) served by CloudFront from S3; every other path goes to Django.
    new WebDistribution(this, 'Cdn', {
      function: web,
      staticFiles: WebStaticFiles.fromDirectory(path.join(__dirname, 'static'), { path: '/static/' }),
    });
    new WebCommandSchedule(this, 'ClearSessions', {
      function: web,
      command: WebCommand.django('clearsessions'),
      schedule: scheduler.ScheduleExpression.cron({ hour: '3', minute: '0', timeZone: TimeZone.EUROPE_LONDON }),
    }).addFailureAlarm();
  }
}

if (require.main === module) {
  const app = new App();
  new DjangoExampleStack(app, 'WarmWebDjango');
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
}
