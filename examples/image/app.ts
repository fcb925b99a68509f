import * as path from 'path';
import { App, Stack, StackProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import { WarmWebFunction, WebApp, WebCode } from '../../lib';

/** The FastAPI app of examples/fastapi in a container image built from its Dockerfile, with the same shim and warm protocol. */
export class ImageExampleStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    new WarmWebFunction(this, 'Api', {
      app: WebApp.asgi('main:app'),
      code: WebCode.fromImageAsset(path.join(__dirname, '..', 'fastapi')),
      warming: { concurrency: 2 },
    });
  }
}

if (require.main === module) {
  const app = new App();
  new ImageExampleStack(app, 'WarmWebImage');
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
}
