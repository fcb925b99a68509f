import { App, Annotations, Stack, StackProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import { WarmWebFunction, WebApp, WebCode } from '../../lib';
import { codeDirectory } from '../code-directory';

/** An Express app, untouched, as a request listener on a Function URL. */
export class ExpressExampleStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    const { directory, packaged } = codeDirectory(__dirname);
    if (!packaged) {
      Annotations.of(this).addWarningV2('example:notPackaged', 'Express is not packaged: run examples/package.sh express before deploying');
    }
    new WarmWebFunction(this, 'Web', {
      app: WebApp.nodeRequestListener('server.app'),
      code: WebCode.fromDirectory(directory, { exclude: ['package-lock.json'] }),
    });
  }
}

if (require.main === module) {
  const app = new App();
  new ExpressExampleStack(app, 'WarmWebExpress');
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
}
