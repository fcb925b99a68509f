import { Annotations, App, StackProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import { WarmWebStack, WebApp, WebCode } from '../../lib';
import { codeDirectory } from '../code-directory';

/** An Express app, untouched, as a request listener on a Function URL, with two environments kept warm. */
export class ExpressExampleStack extends WarmWebStack {
  constructor(scope: Construct, id: string, props: StackProps = {}) {
    const { directory, packaged } = codeDirectory(__dirname);
    super(scope, id, {
      ...props,
      web: {
        app: WebApp.nodeRequestListener('server.app'),
        code: WebCode.fromDirectory(directory, { exclude: ['package-lock.json'] }),
        warming: { concurrency: 2 },
      },
    });
    if (!packaged) {
      Annotations.of(this).addWarningV2('example:notPackaged', 'Express is not packaged: run examples/package.sh express before deploying');
    }
  }
}

if (require.main === module) {
  const app = new App();
  new ExpressExampleStack(app, 'WarmWebExpress');
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
}
