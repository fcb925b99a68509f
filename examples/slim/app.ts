import * as path from 'path';
import { App, Stack, StackProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import { WarmWebFunction, WebApp, WebCode } from '../../lib';
import { codeDirectory } from '../code-directory';

/**
 * The Django site of examples/django as slim code: a content-addressed archive in the stack's code bucket,
 * unpacked by the shim during INIT. The same works for trees far beyond Lambda's 250 MB zip limit.
 */
export class SlimExampleStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    new WarmWebFunction(this, 'Web', {
      app: WebApp.wsgi('mysite.wsgi:application'),
      code: WebCode.fromSlimAsset(codeDirectory(path.join(__dirname, '..', 'django')).directory),
      environment: { DJANGO_SETTINGS_MODULE: 'mysite.settings' },
    });
  }
}

if (require.main === module) {
  const app = new App();
  new SlimExampleStack(app, 'WarmWebSlim');
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
}
