import { Duration } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/**
 * Options for a Function URL endpoint.
 */
export interface FunctionUrlEndpointOptions {
  /**
   * Who may call the URL. `NONE` makes a public website; `AWS_IAM` requires SigV4-signed requests
   * (e.g. behind CloudFront with origin access control).
   *
   * @default lambda.FunctionUrlAuthType.NONE
   */
  readonly authType?: lambda.FunctionUrlAuthType;

  /**
   * Cross-origin resource sharing settings answered by the Function URL itself.
   *
   * @default - no CORS headers added by the URL (the app may still send its own)
   */
  readonly cors?: lambda.FunctionUrlCorsOptions;
}

/**
 * Options for an HTTP API endpoint.
 */
export interface HttpApiEndpointOptions {
  /**
   * How long the stage's access logs are kept.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly accessLogRetention?: logs.RetentionDays;

  /**
   * CORS settings answered by the HTTP API.
   *
   * @default - no CORS preflight handling by the API
   */
  readonly corsPreflight?: apigwv2.CorsPreflightOptions;

  /**
   * An authorizer for every route (JWT, Lambda or IAM).
   *
   * @default - no authorizer: a public website
   */
  readonly authorizer?: apigwv2.IHttpRouteAuthorizer;
}

/**
 * What a `WebEndpoint` made for the alias.
 */
export interface WebEndpointConfig {
  /**
   * The URL that reaches the app.
   *
   * @default - no URL (no endpoint)
   */
  readonly url?: string;

  /**
   * The Function URL, when the endpoint is one.
   *
   * @default - not a Function URL
   */
  readonly functionUrl?: lambda.FunctionUrl;

  /**
   * The HTTP API, when the endpoint is one.
   *
   * @default - not an HTTP API
   */
  readonly httpApi?: apigwv2.HttpApi;
}

/**
 * How HTTP requests reach the `live` alias.
 */
export abstract class WebEndpoint {
  /**
   * A Lambda Function URL on the `live` alias: no extra service, no 30 s integration timeout.
   */
  public static functionUrl(options: FunctionUrlEndpointOptions = {}): WebEndpoint {
    return new FunctionUrlEndpoint(options);
  }

  /**
   * An API Gateway HTTP API whose default route proxies every request to the `live` alias, with
   * access logging on. API Gateway ends integrations after 30 s.
   */
  public static httpApi(options: HttpApiEndpointOptions = {}): WebEndpoint {
    return new HttpApiEndpoint(options);
  }

  /**
   * No endpoint: the alias is reached by something you wire yourself (an ALB target group,
   * your own API).
   */
  public static none(): WebEndpoint {
    return new NoEndpoint();
  }

  /**
   * The longest function timeout this endpoint can wait for.
   *
   * @default - no limit below Lambda's own
   */
  public readonly maxTimeout?: Duration;

  protected constructor(maxTimeout?: Duration) {
    this.maxTimeout = maxTimeout;
  }

  /**
   * Creates the endpoint for an alias.
   *
   * @param scope the construct that owns the endpoint
   * @param alias the alias every request goes to
   */
  public abstract bind(scope: Construct, alias: lambda.Alias): WebEndpointConfig;
}

class FunctionUrlEndpoint extends WebEndpoint {
  constructor(private readonly options: FunctionUrlEndpointOptions) {
    super();
  }

  public bind(_scope: Construct, alias: lambda.Alias): WebEndpointConfig {
    const functionUrl = alias.addFunctionUrl({
      authType: this.options.authType ?? lambda.FunctionUrlAuthType.NONE,
      cors: this.options.cors,
      invokeMode: lambda.InvokeMode.BUFFERED,
    });
    return { url: functionUrl.url, functionUrl };
  }
}

class HttpApiEndpoint extends WebEndpoint {
  constructor(private readonly options: HttpApiEndpointOptions) {
    super(Duration.seconds(30));
  }

  public bind(scope: Construct, alias: lambda.Alias): WebEndpointConfig {
    const httpApi = new apigwv2.HttpApi(scope, 'HttpApi', {
      defaultIntegration: new HttpLambdaIntegration('LiveAlias', alias),
      corsPreflight: this.options.corsPreflight,
      defaultAuthorizer: this.options.authorizer,
      createDefaultStage: false,
    });
    const accessLogs = new logs.LogGroup(scope, 'HttpApiAccessLogs', {
      retention: this.options.accessLogRetention ?? logs.RetentionDays.ONE_MONTH,
    });
    const stage = httpApi.addStage('DefaultStage', {
      stageName: '$default',
      autoDeploy: true,
      accessLogSettings: { destination: new apigwv2.LogGroupLogDestination(accessLogs) },
    });
    return { url: stage.url, httpApi };
  }
}

class NoEndpoint extends WebEndpoint {
  public bind(): WebEndpointConfig {
    return {};
  }
}
