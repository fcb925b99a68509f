import { App, Annotations, Stack, StackProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import { WarmWebFunction, WebApp, WebCode, WebEndpoint } from '../../lib';
import { codeDirectory } from '../code-directory';

/** A FastAPI app behind an HTTP API; its lifespan startup runs once, during INIT. */
export class FastApiExampleStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    const { directory, packaged } = codeDirectory(__dirname);
    if (!packaged) {
      Annotations.of(this).addWarningV2('example:notPackaged', 'FastAPI is not packaged: run examples/package.sh fastapi before deploying');
    }
    const api = new WarmWebFunction(this, 'Api', {
      app: WebApp.asgi('main:app'),
      code: WebCode.fromDirectory(directory),
      endpoint: WebEndpoint.httpApi(),
    });
    Validations.of(api).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason: 'A public read-only demo API: every route is meant to be reachable without credentials. '
        + 'A private API passes WebEndpoint.httpApi({ authorizer }).',
    });
  }
}

if (require.main === module) {
  const app = new App();
  new FastApiExampleStack(app, 'WarmWebFastApi');
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
}
