import * as path from 'path';
import { Annotations, CfnOutput, Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as targets from 'aws-cdk-lib/aws-route53-targets';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct, IConstruct } from 'constructs';
import { checkDirectory } from './private/code-directory';
import { FORWARDED_HOST_FUNCTION } from './private/forwarded-host';
import { WarmWebFunction } from './warm-web-function';

/** The origin custom header that carries the origin secret (the runtime shims check it). */
const ORIGIN_HEADER = 'X-Warm-Web-Origin';
/** What every static object is served with: its name changes whenever its content does. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** CloudFront waits at most this long for an origin without a quota increase. */
const MAX_READ_TIMEOUT = Duration.seconds(60);
const HOST_NAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Options for static files served from S3.
 */
export interface WebStaticFilesOptions {
  /**
   * The URL path the files are served under (Django's `STATIC_URL`): starts and ends with `/`, no
   * wildcards. A file `css/site.css` of the directory is served at `<path>css/site.css`.
   *
   * @default '/static/'
   */
  readonly path?: string;

  /**
   * Glob patterns of files in the directory not to upload.
   *
   * @default - every file is uploaded
   */
  readonly exclude?: string[];
}

/**
 * What a `WebStaticFiles` gives the distribution.
 */
export interface WebStaticFilesConfig {
  /** What to upload into the static bucket, under the path's prefix. */
  readonly sources: s3deploy.ISource[];
}

/**
 * Files served by CloudFront from an S3 bucket instead of the function.
 */
export abstract class WebStaticFiles {
  /**
   * The files of a directory, e.g. the `STATIC_ROOT` that Django's `collectstatic` fills. Uploaded at deploy
   * and served with `Cache-Control: public, max-age=31536000, immutable`: reference them by content-hashed
   * names (`ManifestStaticFilesStorage`, webpack/vite `[hash]` names), since a file changed under the same
   * name stays cached for up to a year.
   *
   * @param directory the directory, read at synth
   */
  public static fromDirectory(directory: string, options: WebStaticFilesOptions = {}): WebStaticFiles {
    return new DirectoryStaticFiles(directory, options);
  }

  /** The URL path the files are served under, starting and ending with `/`. */
  public readonly path: string;

  protected constructor(urlPath: string) {
    this.path = urlPath;
  }

  /**
   * What to upload.
   *
   * @param scope the construct that uploads the files
   */
  public abstract bind(scope: Construct): WebStaticFilesConfig;
}

class DirectoryStaticFiles extends WebStaticFiles {
  constructor(private readonly directory: string, private readonly options: WebStaticFilesOptions) {
    super(options.path ?? '/static/');
  }

  public bind(scope: Construct): WebStaticFilesConfig {
    try {
      checkDirectory('WebStaticFiles.fromDirectory', this.directory);
    } catch (error) {
      throw new Error(`WebDistribution ${scope.node.path} staticFiles: ${(error as Error).message}`);
    }
    return { sources: [s3deploy.Source.asset(path.resolve(this.directory), { exclude: this.options.exclude })] };
  }
}

/**
 * A custom domain name for the distribution.
 */
export interface WebDistributionDomain {
  /**
   * The host name the site is reached at, e.g. `www.example.com` (lower case, no wildcard).
   */
  readonly domainName: string;

  /**
   * A certificate for `domainName`. CloudFront only takes certificates from ACM in us-east-1, whatever
   * the stack's region: create it there (a stack in us-east-1, or `crossRegionReferences`).
   */
  readonly certificate: acm.ICertificate;

  /**
   * A public hosted zone holding `domainName`: A and AAAA alias records pointing at the distribution are
   * added to it.
   *
   * @default - no records: point the name at the distribution's domain yourself
   */
  readonly hostedZone?: route53.IHostedZone;
}

/**
 * Properties of a `WebDistribution`.
 */
export interface WebDistributionProps {
  /**
   * The web function to front. It must have a Function URL endpoint (`WebEndpoint.functionUrl()`, the
   * default) with auth type `NONE`.
   */
  readonly function: WarmWebFunction;

  /**
   * Static files served from S3 under their own path.
   *
   * @default - no static files: every path goes to the function (WhiteNoise or the app serves them)
   */
  readonly staticFiles?: WebStaticFiles;

  /**
   * A custom domain name, with its certificate and optionally its Route 53 zone.
   *
   * @default - only the distribution's `*.cloudfront.net` name
   */
  readonly domain?: WebDistributionDomain;

  /**
   * Which edge locations serve the site (and what they cost).
   *
   * @default cloudfront.PriceClass.PRICE_CLASS_100 (North America and Europe)
   */
  readonly priceClass?: cloudfront.PriceClass;

  /**
   * The lowest TLS version and ciphers offered to browsers. Applies with a custom domain only: CloudFront's
   * default certificate fixes its own.
   *
   * @default cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021
   */
  readonly minimumProtocolVersion?: cloudfront.SecurityPolicyProtocol;

  /**
   * A bucket for CloudFront's standard access logs (prefix `cloudfront/`) and the static bucket's server
   * access logs (prefix `static-bucket/`). CloudFront writes its logs with ACLs: the bucket must have ACLs
   * enabled (`objectOwnership: s3.ObjectOwnership.OBJECT_WRITER` or `BUCKET_OWNER_PREFERRED`).
   *
   * @default - no access logs: the function's own logs record each dynamic request
   */
  readonly logBucket?: s3.IBucket;

  /**
   * The ARN of an AWS WAF web ACL (WAFv2, scope `CLOUDFRONT`, in us-east-1) to filter requests with.
   *
   * @default - no web ACL
   */
  readonly webAclArn?: string;
}

/** Functions already behind a distribution: the origin secret and hosts are per function. */
const fronted = new WeakMap<WarmWebFunction, string>();

/**
 * A CloudFront distribution in front of a `WarmWebFunction`'s Function URL, with static files from S3
 * and an optional custom domain.
 *
 * Every path except the static files goes to the function uncached, with all viewer headers, cookies and
 * query strings except `Host` (a Function URL must receive its own host); the viewer's host arrives as
 * `X-Forwarded-Host` (a viewer-request CloudFront Function copies it), `Origin` is passed on for CSRF checks,
 * and the Function URL sets `X-Forwarded-Proto: https`. All methods are allowed.
 *
 * **The origin stays private without origin access control.** OAC signs requests to a Function URL, but
 * Lambda does not accept unsigned payloads: the browser itself would have to send `x-amz-content-sha256`
 * with every POST or PUT body, which plain HTML forms never do. Instead the Function URL keeps auth type
 * `NONE`, CloudFront adds an `X-Warm-Web-Origin` header holding a secret generated by Secrets Manager, and
 * the function gets the same value as `WARM_WEB_ORIGIN_SECRET`: the runtime shim answers 403 to any HTTP
 * request without it before the app sees it (warm pings and commands are not HTTP and pass). Both sides
 * take the value by a CloudFormation dynamic reference, so it is never in the template; it is visible,
 * resolved, to whoever may read the function's configuration (`lambda:GetFunctionConfiguration`, the
 * console) or the distribution's (`cloudfront:GetDistributionConfig`). Requests sent straight to the
 * Function URL are still invocations (billed, counted against concurrency), answered by the shim without
 * running the app. Never rotate the secret by hand: CloudFormation resolves it into each resource only when
 * it updates that resource, so the two could disagree and every request would get 403.
 *
 * **Hosts.** The function's environment cannot name the distribution's `*.cloudfront.net` domain (the
 * distribution depends on the function's URL: a cycle). It does not need to: only this distribution has
 * the secret, and CloudFront hands a request to a distribution only for that distribution's own domain
 * or aliases, so every host that reaches the app is one of ours. `WARM_WEB_ALLOWED_HOSTS` (Django
 * `ALLOWED_HOSTS` patterns, read by `warm_web.django`) is therefore the custom domain when there is one
 * (requests to the `*.cloudfront.net` name are then refused by Django), else `.cloudfront.net`;
 * `WARM_WEB_CSRF_TRUSTED_ORIGINS` is `https://<domain>` or `https://*.cloudfront.net` accordingly.
 */
export class WebDistribution extends Construct {
  /** The CloudFront distribution. */
  public readonly distribution: cloudfront.Distribution;

  /** The secret CloudFront sends to the function in `X-Warm-Web-Origin`. */
  public readonly originSecret: secretsmanager.ISecret;

  /**
   * The bucket the static files are served from.
   *
   * @default - undefined without `staticFiles`
   */
  public readonly staticBucket?: s3.IBucket;

  /** The host name browsers use: the custom domain, or the distribution's `*.cloudfront.net` name. */
  public readonly domainName: string;

  /** `https://` and `domainName`. */
  public readonly url: string;

  constructor(scope: Construct, id: string, props: WebDistributionProps) {
    super(scope, id);
    const web = props.function;
    const functionUrl = this.validateFunction(web);
    const staticPath = props.staticFiles?.path;
    if (staticPath !== undefined) validateStaticPath(this, staticPath);
    if (props.domain) validateDomain(this, props.domain);
    if (props.minimumProtocolVersion && !props.domain) {
      throw new Error(`WebDistribution ${this.node.path} minimumProtocolVersion is ${props.minimumProtocolVersion} but there is no domain: `
        + 'CloudFront\'s default *.cloudfront.net certificate fixes its own; give domain to choose it');
    }
    if (props.webAclArn !== undefined) validateWebAcl(this, props.webAclArn);

    this.originSecret = new secretsmanager.Secret(this, 'OriginSecret', {
      description: `Sent by CloudFront to ${web.node.path} in ${ORIGIN_HEADER}: requests without it are refused`,
      generateSecretString: { passwordLength: 48, excludePunctuation: true },
    });
    ack(this.originSecret, 'AwsSolutions-SMG4', 'A rotation would change the value in Secrets Manager only: CloudFormation '
      + 'resolves it into the distribution and the function when it updates each of them, so after a rotation they could '
      + 'disagree and every request would be refused. The value never leaves AWS configuration and is not a credential '
      + 'to any other system.');
    const secret = this.originSecret.secretValue.unsafeUnwrap();

    const viewerRequest = new cloudfront.Function(this, 'ForwardedHost', {
      comment: 'cdk-warm-web: copies the viewer Host into X-Forwarded-Host',
      code: cloudfront.FunctionCode.fromInline(FORWARDED_HOST_FUNCTION),
      runtime: cloudfront.FunctionRuntime.JS_2_0,
    });
    const timeout = web.lambdaFunction.timeout;
    const readTimeout = timeout && !timeout.isUnresolved() && timeout.toSeconds() < MAX_READ_TIMEOUT.toSeconds()
      ? Duration.seconds(Math.max(1, timeout.toSeconds())) : MAX_READ_TIMEOUT;
    if (timeout && !timeout.isUnresolved() && timeout.toSeconds() > MAX_READ_TIMEOUT.toSeconds()) {
      Annotations.of(this).addWarningV2('cdk-warm-web:timeoutBeyondCloudFront',
        `${web.node.path} may run ${timeout.toHumanString()} but CloudFront waits ${MAX_READ_TIMEOUT.toHumanString()} for an origin `
        + '(a quota increase allows up to 180 seconds); longer requests get a 504');
    }

    const domain = props.domain;
    this.distribution = new cloudfront.Distribution(this, 'Resource', {
      comment: `cdk-warm-web: ${web.node.path}`,
      defaultBehavior: {
        origin: new origins.FunctionUrlOrigin(functionUrl, { customHeaders: { [ORIGIN_HEADER]: secret }, readTimeout }),
        allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL,
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
        originRequestPolicy: cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
        responseHeadersPolicy: cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
        functionAssociations: [{ function: viewerRequest, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST }],
      },
      domainNames: domain ? [domain.domainName] : undefined,
      certificate: domain?.certificate,
      minimumProtocolVersion: domain ? props.minimumProtocolVersion ?? cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 : undefined,
      priceClass: props.priceClass ?? cloudfront.PriceClass.PRICE_CLASS_100,
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      enableIpv6: true,
      enableLogging: props.logBucket !== undefined,
      logBucket: props.logBucket,
      logFilePrefix: props.logBucket ? 'cloudfront/' : undefined,
      webAclId: props.webAclArn,
    });
    if (!props.logBucket) {
      ack(this.distribution, 'AwsSolutions-CFR3', 'Access logs are opt-in (logBucket): every request that is not a static '
        + 'file reaches the function, whose log group records it.');
    }
    if (!props.webAclArn) {
      ack(this.distribution, 'AwsSolutions-CFR2', 'WAF is opt-in (webAclArn): a web ACL costs a monthly fee per ACL and rule.');
    }
    ack(this.distribution, 'AwsSolutions-CFR1', 'A web site for every country; restrict with a web ACL (webAclArn) if needed.');
    if (!domain) {
      ack(this.distribution, 'AwsSolutions-CFR4', 'Without a custom domain the distribution uses CloudFront\'s default '
        + '*.cloudfront.net certificate, whose minimum TLS version CloudFront fixes; with `domain` it is TLS_V1_2_2021.');
    }

    if (props.staticFiles && staticPath !== undefined) {
      this.staticBucket = this.addStaticFiles(props.staticFiles, staticPath, props.logBucket);
    }

    this.domainName = domain?.domainName ?? this.distribution.distributionDomainName;
    this.url = `https://${this.domainName}`;
    if (domain?.hostedZone) {
      const target = route53.RecordTarget.fromAlias(new targets.CloudFrontTarget(this.distribution));
      new route53.ARecord(this, 'AliasRecord', { zone: domain.hostedZone, recordName: domain.domainName, target });
      new route53.AaaaRecord(this, 'AliasRecordIpv6', { zone: domain.hostedZone, recordName: domain.domainName, target });
    }

    const fn = web.lambdaFunction;
    fn.addEnvironment('WARM_WEB_ORIGIN_SECRET', secret);
    fn.addEnvironment('WARM_WEB_ALLOWED_HOSTS', domain ? domain.domainName : '.cloudfront.net');
    fn.addEnvironment('WARM_WEB_CSRF_TRUSTED_ORIGINS', domain ? `https://${domain.domainName}` : 'https://*.cloudfront.net');
    fronted.set(web, this.node.path);

    new CfnOutput(this, 'SiteAddress', { value: this.url, description: `Address of the site served by ${this.node.path}` });
  }

  private validateFunction(web: WarmWebFunction): lambda.FunctionUrl {
    const already = fronted.get(web);
    if (already !== undefined) {
      throw new Error(`WebDistribution ${this.node.path}: function ${web.node.path} is already behind WebDistribution ${already}; `
        + 'one distribution per function (the origin secret and the allowed hosts are per function)');
    }
    const functionUrl = web.functionUrl;
    if (!functionUrl) {
      const endpoint = web.httpApi ? 'an HTTP API' : 'no endpoint';
      throw new Error(`WebDistribution ${this.node.path}: function ${web.node.path} has ${endpoint}; CloudFront fronts its `
        + 'Function URL: give it endpoint: WebEndpoint.functionUrl() (the default)');
    }
    if (functionUrl.authType !== lambda.FunctionUrlAuthType.NONE) {
      throw new Error(`WebDistribution ${this.node.path}: the Function URL of ${web.node.path} has authType ${functionUrl.authType}; `
        + 'CloudFront does not sign its requests here (signed POST bodies break HTML forms): use authType NONE, the origin secret '
        + 'keeps it private');
    }
    return functionUrl;
  }

  private addStaticFiles(staticFiles: WebStaticFiles, staticPath: string, logBucket?: s3.IBucket): s3.Bucket {
    const bucket = new s3.Bucket(this, 'StaticBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      serverAccessLogsBucket: logBucket,
      serverAccessLogsPrefix: logBucket ? 'static-bucket/' : undefined,
    });
    if (!logBucket) {
      ack(bucket, 'AwsSolutions-S1', 'Access logs are opt-in (logBucket): the bucket holds build output that is public '
        + 'through the distribution anyway, and only the deployment writes to it.');
    }
    const prefix = staticPath.slice(1);
    this.distribution.addBehavior(`${prefix}*`, origins.S3BucketOrigin.withOriginAccessControl(bucket), {
      allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
      viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
      // Honours the objects' max-age up to a year; no cookies, headers or query strings in the key.
      cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
      responseHeadersPolicy: cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
    });
    const deployment = new s3deploy.BucketDeployment(this, 'StaticDeployment', {
      sources: staticFiles.bind(this).sources,
      destinationBucket: bucket,
      destinationKeyPrefix: prefix,
      // Old content-hashed files stay: pages of the previous version (and a rollback) still name them.
      prune: false,
      cacheControl: [s3deploy.CacheControl.fromString(IMMUTABLE)],
      memoryLimit: 512,
    });
    acknowledgeDeploymentRole(deployment.handlerRole);
    return bucket;
  }
}

/**
 * cdk-nag's findings on the upload function's role, acknowledged one by one (cdk-nag matches the full
 * finding id): its managed logging policy, and the wildcard actions and keys aws-s3-deployment grants.
 */
function acknowledgeDeploymentRole(role: iam.IRole) {
  ack(role, 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    'aws-s3-deployment\'s upload function writes its logs with AWSLambdaBasicExecutionRole.');
  const handler = role.node.scope;
  if (handler) {
    ack(handler, 'AwsSolutions-L1', 'aws-cdk-lib picks the runtime of aws-s3-deployment\'s upload function, which matches its '
      + 'AWS CLI layer; it runs only during deploys.');
  }
  const policy = role.node.tryFindChild('DefaultPolicy');
  if (!(policy instanceof iam.Policy)) return;
  const document = Stack.of(role).resolve(policy.document.toJSON()) as { Statement?: Array<{ Action?: unknown; Resource?: unknown }> };
  const findings = new Set<string>();
  for (const statement of document.Statement ?? []) {
    for (const action of [statement.Action ?? []].flat()) {
      if (typeof action === 'string' && action.includes('*')) findings.add(`Action::${action}`);
    }
    for (const resource of [statement.Resource ?? []].flat()) {
      const text = flatten(resource);
      if (text.includes('*')) findings.add(`Resource::${text}`);
    }
  }
  for (const finding of findings) {
    ack(role, `AwsSolutions-IAM5[${finding}]`, 'aws-s3-deployment copies a whole directory: it reads every key of the staged '
      + 'asset and writes every key under the static prefix, names the policy cannot list.');
  }
}

/** A resolved ARN as cdk-nag names it in a finding: Ref and Sub variables as <Name>, GetAtt as <Resource.Attribute>. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if (typeof v?.Ref === 'string') return `<${v.Ref}>`;
  if (Array.isArray(v?.['Fn::GetAtt'])) return `<${(v['Fn::GetAtt'] as string[]).join('.')}>`;
  if (typeof v?.['Fn::Sub'] === 'string') return (v['Fn::Sub'] as string).replace(/\$\{([^}]+)\}/g, '<$1>');
  if (Array.isArray(v?.['Fn::Join'])) {
    const [separator, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(flatten).join(separator);
  }
  return JSON.stringify(value);
}

function ack(scope: IConstruct, id: string, reason: string) {
  if (id.split('::').length > 2) {
    // Validations.acknowledge reserves '::' for one prefix, but cdk-nag finding ids hold ARNs with more:
    // record the acknowledgment in the metadata entry cdk-nag reads, as acknowledge() itself does.
    scope.node.addMetadata(Validations.ACKNOWLEDGED_RULES_METADATA_KEY, { [id]: reason });
    return;
  }
  Validations.of(scope).acknowledge({ id, reason });
}

function validateStaticPath(scope: Construct, value: string) {
  if (Token.isUnresolved(value)) {
    throw new Error(`WebDistribution ${scope.node.path} staticFiles path must be known at synth (it names a cache behavior)`);
  }
  if (!/^\/(?:[A-Za-z0-9._~-]+\/)+$/.test(value)) {
    throw new Error(`WebDistribution ${scope.node.path} staticFiles path must start and end with '/' and hold only `
      + `letters, digits, '.', '_', '~', '-' between them (for example '/static/'), got '${value}'`);
  }
}

function validateDomain(scope: Construct, domain: WebDistributionDomain) {
  const name = domain.domainName;
  const where = `WebDistribution ${scope.node.path} domain.domainName`;
  if (!Token.isUnresolved(name) && !HOST_NAME.test(name)) {
    throw new Error(`${where} must be a lower-case host name such as 'www.example.com' (no wildcard, no scheme, no trailing dot), got '${name}'`);
  }
  // An imported certificate's env is its scope's; its ARN names where it really is.
  const arn = domain.certificate.certificateArn;
  const region = Token.isUnresolved(arn) ? domain.certificate.env.region : arn.split(':')[3];
  if (!Token.isUnresolved(region) && region !== 'us-east-1') {
    throw new Error(`WebDistribution ${scope.node.path} domain.certificate is in ${region}; CloudFront only uses ACM certificates `
      + 'in us-east-1');
  }
  const zone = domain.hostedZone;
  if (zone && !Token.isUnresolved(name) && !Token.isUnresolved(zone.zoneName)) {
    const zoneName = zone.zoneName.replace(/\.$/, '');
    if (name !== zoneName && !name.endsWith(`.${zoneName}`)) {
      throw new Error(`${where} '${name}' is not in domain.hostedZone '${zoneName}'`);
    }
  }
}

function validateWebAcl(scope: Construct, arn: string) {
  if (Token.isUnresolved(arn)) return;
  if (!/^arn:aws[a-z-]*:wafv2:us-east-1:\d{12}:global\/webacl\/[^/]+\/[^/]+$/.test(arn)) {
    throw new Error(`WebDistribution ${scope.node.path} webAclArn must be the ARN of a WAFv2 web ACL with scope CLOUDFRONT `
      + `(arn:aws:wafv2:us-east-1:<account>:global/webacl/<name>/<id>), got '${arn}'`);
  }
}
