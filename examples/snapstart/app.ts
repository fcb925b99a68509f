import * as path from 'path';
import { App, Stack, StackProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import { WarmWebFunction, WebApp, WebCode } from '../../lib';
import { codeDirectory } from '../code-directory';

/**
 * The FastAPI app of examples/fastapi with SnapStart: INIT (import, lifespan startup, priming) runs once
 * per version, and new environments resume from the snapshot.
 */
export class SnapStartExampleStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    new WarmWebFunction(this, 'Api', {
      app: WebApp.asgi('main:app'),
      code: WebCode.fromDirectory(codeDirectory(path.join(__dirname, '..', 'fastapi')).directory),
      snapStart: true,
      prime: ['/', '/items/1'],
    });
  }
}

if (require.main === module) {
  const app = new App();
  new SnapStartExampleStack(app, 'WarmWebSnapStart');
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
}
