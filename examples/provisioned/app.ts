import * as path from 'path';
import { App, Duration, Stack, StackProps, TimeZone, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import { TrafficShifting, WarmCalendar, WarmWebFunction, WebApp, WebCode, WebCommand } from '../../lib';
import { codeDirectory } from '../code-directory';

/**
 * The Django site of examples/django with provisioned concurrency that follows a business-hours
 * calendar, target tracking on the Maximum statistic, and its alarms. Each deploy migrates the database
 * with the new version before any traffic reaches it, then sends it 10 % of the traffic for 5 minutes.
 */
export class ProvisionedExampleStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    const calendar = WarmCalendar.weekly({
      timeZone: TimeZone.EUROPE_BERLIN,
      periods: [{ weekDays: 'MON-FRI', startHour: 8, endHour: 20, environments: 10 }],
      otherwise: 2,
    });
    const web = new WarmWebFunction(this, 'Web', {
      app: WebApp.wsgi('mysite.wsgi:application'),
      code: WebCode.fromDirectory(codeDirectory(path.join(__dirname, '..', 'django')).directory),
      environment: { DJANGO_SETTINGS_MODULE: 'mysite.settings' },
      prime: ['/', '/health'],
      provisionedConcurrency: { minCapacity: 2, maxCapacity: 30, schedules: calendar.capacitySchedules() },
      deployment: {
        migrations: [WebCommand.django('migrate', '--noinput')],
        trafficShifting: TrafficShifting.canary(10, Duration.minutes(5)),
      },
    });
    web.provisionedAutoScaling!.addSpilloverAlarm();
    web.provisionedAutoScaling!.addUtilizationAlarm();
  }
}

if (require.main === module) {
  const app = new App();
  new ProvisionedExampleStack(app, 'WarmWebProvisioned');
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
}
