import * as path from 'path';
import { App, StackProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import { WarmWebStack, WebApp, WebCode } from '../../lib';

/**
 * The FastAPI app of examples/fastapi in a container image built from its Dockerfile. Images cannot use
 * SnapStart: the warmer keeps three verified environments warm instead.
 */
export class FastApiImageExampleStack extends WarmWebStack {
  constructor(scope: Construct, id: string, props: StackProps = {}) {
    super(scope, id, {
      ...props,
      web: {
        app: WebApp.asgi('main:app'),
        code: WebCode.fromImageAsset(path.join(__dirname, '..', 'fastapi')),
        warming: { concurrency: 3 },
      },
    });
  }
}

if (require.main === module) {
  const app = new App();
  new FastApiImageExampleStack(app, 'WarmWebFastApiImage');
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
}
