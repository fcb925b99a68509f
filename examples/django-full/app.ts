import { Annotations, App, StackProps, TimeZone, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import { RouterDatabase, WarmCalendar, WarmWebStack, WebApp, WebCode } from '../../lib';
import { codeDirectory } from '../code-directory';

/**
 * The seed scenario end to end: a Django guestbook with its dependencies as slim code, Aurora PostgreSQL
 * (writer + reader) behind RDS Proxy, the Django read-replica router, Valkey for the cached list,
 * provisioned concurrency on a business-hours calendar and a warmer for the spill-over above it.
 */
export class DjangoFullExampleStack extends WarmWebStack {
  constructor(scope: Construct, id: string, props: StackProps = {}) {
    const { directory, packaged } = codeDirectory(__dirname);
    const hours = { weekDays: 'MON-FRI', startHour: 8, endHour: 20 };
    // Provisioned environments carry the baseline; the warmer keeps on-demand ones warm above it.
    const provisioned = WarmCalendar.weekly({ timeZone: TimeZone.ASIA_SEOUL, periods: [{ ...hours, environments: 10 }], otherwise: 2 });
    const warm = WarmCalendar.weekly({ timeZone: TimeZone.ASIA_SEOUL, periods: [{ ...hours, environments: 20 }], otherwise: 4 });
    super(scope, id, {
      ...props,
      web: {
        app: WebApp.wsgi('guestbook.wsgi:application'),
        code: WebCode.fromSlimAsset(directory),
        environment: { DJANGO_SETTINGS_MODULE: 'guestbook.settings' },
        prime: ['/health'],
        provisionedConcurrency: { minCapacity: 2, maxCapacity: 40, schedules: provisioned.capacitySchedules() },
        warming: { schedules: warm.warmSchedules() },
      },
      database: { database: RouterDatabase.aurora({ readers: 1 }) },
      cache: {},
    });
    if (!packaged) {
      Annotations.of(this).addWarningV2('example:notPackaged', 'The guestbook is not packaged: run examples/package.sh django-full before deploying');
    }
  }
}

if (require.main === module) {
  const app = new App();
  new DjangoFullExampleStack(app, 'WarmWebDjangoFull');
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
}
