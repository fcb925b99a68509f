import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vm from 'vm';
import { App, Duration, Lazy, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { AwsSolutionsChecks } from 'cdk-nag';
import { WarmWebFunction, WarmWebFunctionProps, WebApp, WebCode, WebDistribution, WebDistributionProps, WebEndpoint, WebStaticFiles } from '../lib';
import { FORWARDED_HOST_FUNCTION } from '../lib/private/forwarded-host';

const codeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-code-'));
fs.writeFileSync(path.join(codeDir, 'app.py'), 'app = None\n');
const staticDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-static-'));
fs.writeFileSync(path.join(staticDir, 'site.5f1c2e9a.css'), 'body { margin: 0 }\n');

const CERT_ARN = 'arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555';
const WEB_ACL_ARN = 'arn:aws:wafv2:us-east-1:123456789012:global/webacl/site/a1b2c3d4-5678-90ab-cdef-EXAMPLE11111';

// Managed CloudFront policies the distribution uses (their IDs are fixed by CloudFront).
const CACHING_DISABLED = '4135ea2d-6df8-44a3-9df3-4b5a84be39ad';
const CACHING_OPTIMIZED = '658327ea-f89d-4fab-a63d-7e88639e58f6';
const ALL_VIEWER_EXCEPT_HOST = 'b689b0a8-53d0-40ab-baf2-68738e2966ac';

interface Built { readonly stack: Stack; readonly web: WarmWebFunction; readonly cdn: WebDistribution }

function build(props: Partial<WebDistributionProps> = {}, fnProps: Partial<WarmWebFunctionProps> = {}): Built {
  const stack = new Stack(new App(), 'TestStack', { env: { account: '123456789012', region: 'eu-west-1' } });
  const web = new WarmWebFunction(stack, 'Web', { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir), ...fnProps });
  const cdn = new WebDistribution(stack, 'Cdn', { function: web, ...props });
  return { stack, web, cdn };
}

function webEnvironment(template: Template): Record<string, unknown> {
  const fns = template.findResources('AWS::Lambda::Function', { Properties: { Environment: { Variables: { WARM_WEB_APP: 'app:app' } } } });
  const [fn] = Object.values(fns);
  return fn.Properties.Environment.Variables;
}

function certificate(stack: Stack, arn = CERT_ARN): acm.ICertificate {
  return acm.Certificate.fromCertificateArn(stack, `Cert${stack.node.children.length}`, arn);
}

describe('WebDistribution defaults', () => {
  const { stack } = build();
  const template = Template.fromStack(stack);
  const distribution = () => template.findResources('AWS::CloudFront::Distribution');

  test('one distribution, whose default behavior goes to the Function URL uncached, all methods, HTTPS only', () => {
    expect(Object.keys(distribution())).toHaveLength(1);
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: {
        DefaultCacheBehavior: {
          AllowedMethods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'PATCH', 'POST', 'DELETE'],
          CachePolicyId: CACHING_DISABLED,
          OriginRequestPolicyId: ALL_VIEWER_EXCEPT_HOST,
          ViewerProtocolPolicy: 'redirect-to-https',
          FunctionAssociations: [{ EventType: 'viewer-request', FunctionARN: { 'Fn::GetAtt': [Match.stringLikeRegexp('^CdnForwardedHost'), 'FunctionARN'] } }],
        },
        Origins: [{
          DomainName: { 'Fn::Select': [2, { 'Fn::Split': ['/', { 'Fn::GetAtt': [Match.stringLikeRegexp('^WebLiveAliasFunctionUrl'), 'FunctionUrl'] }] }] },
          CustomOriginConfig: { OriginProtocolPolicy: 'https-only', OriginSSLProtocols: ['TLSv1.2'], OriginReadTimeout: 30 },
          OriginCustomHeaders: [{
            HeaderName: 'X-Warm-Web-Origin',
            HeaderValue: { 'Fn::Join': ['', ['{{resolve:secretsmanager:', { Ref: Match.stringLikeRegexp('^CdnOriginSecret') }, ':SecretString:::}}']] },
          }],
        }],
        PriceClass: 'PriceClass_100',
        HttpVersion: 'http2and3',
        IPV6Enabled: true,
        Aliases: Match.absent(),
        Logging: Match.absent(),
        WebACLId: Match.absent(),
        CacheBehaviors: Match.absent(),
      },
    });
  });

  test('the Function URL keeps auth NONE: no origin access control for it', () => {
    template.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'NONE' });
    template.resourceCountIs('AWS::CloudFront::OriginAccessControl', 0);
  });

  test('the function gets the same secret by dynamic reference, and the *.cloudfront.net hosts', () => {
    const secrets = Object.keys(template.findResources('AWS::SecretsManager::Secret'));
    expect(secrets).toHaveLength(1);
    expect(webEnvironment(template)).toEqual(expect.objectContaining({
      WARM_WEB_ORIGIN_SECRET: { 'Fn::Join': ['', ['{{resolve:secretsmanager:', { Ref: secrets[0] }, ':SecretString:::}}']] },
      WARM_WEB_ALLOWED_HOSTS: '.cloudfront.net',
      WARM_WEB_CSRF_TRUSTED_ORIGINS: 'https://*.cloudfront.net',
    }));
    template.hasResourceProperties('AWS::SecretsManager::Secret', { GenerateSecretString: { PasswordLength: 48, ExcludePunctuation: true } });
  });

  test('the secret value never appears in the template', () => {
    const text = JSON.stringify(template.toJSON());
    expect(text).not.toMatch(/SecretString":\s*"/);
    template.hasResourceProperties('AWS::SecretsManager::Secret', { SecretString: Match.absent() });
  });

  test('a viewer-request CloudFront Function (JS 2.0) copies Host into X-Forwarded-Host', () => {
    template.hasResourceProperties('AWS::CloudFront::Function', {
      FunctionConfig: { Runtime: 'cloudfront-js-2.0' },
      FunctionCode: FORWARDED_HOST_FUNCTION,
      AutoPublish: true,
    });
  });

  test('outputs the site address', () => {
    template.hasOutput('*', { Value: { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [Match.stringLikeRegexp('^Cdn'), 'DomainName'] }]] } });
  });

  test('no static bucket without staticFiles', () => {
    template.resourceCountIs('AWS::S3::Bucket', 0);
    template.resourceCountIs('Custom::CDKBucketDeployment', 0);
  });
});

describe('the forwarded-host CloudFront Function, run', () => {
  const handler = (event: unknown) => {
    const context = vm.createContext({});
    vm.runInContext(FORWARDED_HOST_FUNCTION, context);
    return (context as { handler: (e: unknown) => { headers: Record<string, { value: string }> } }).handler(event);
  };
  const event = (headers: Record<string, { value: string }>) => ({ version: '1.0', request: { method: 'POST', uri: '/contact/', headers } });

  test('sets x-forwarded-host to the viewer Host and keeps every other header', () => {
    const request = handler(event({ host: { value: 'www.example.com' }, origin: { value: 'https://www.example.com' } }));
    expect(request.headers).toEqual({
      'host': { value: 'www.example.com' },
      'origin': { value: 'https://www.example.com' },
      'x-forwarded-host': { value: 'www.example.com' },
    });
  });

  test('overwrites an X-Forwarded-Host the viewer sent', () => {
    const request = handler(event({ 'host': { value: 'd111.cloudfront.net' }, 'x-forwarded-host': { value: 'evil.example' } }));
    expect(request.headers['x-forwarded-host']).toEqual({ value: 'd111.cloudfront.net' });
  });
});

describe('WebDistribution static files', () => {
  const { stack } = build({ staticFiles: WebStaticFiles.fromDirectory(staticDir) });
  const template = Template.fromStack(stack);

  test('static/* from the bucket with origin access control, cached by the objects\' own max-age, GET/HEAD only', () => {
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: {
        CacheBehaviors: [{
          PathPattern: 'static/*',
          AllowedMethods: ['GET', 'HEAD'],
          CachePolicyId: CACHING_OPTIMIZED,
          ViewerProtocolPolicy: 'redirect-to-https',
          Compress: true,
        }],
        Origins: Match.arrayWith([Match.objectLike({
          DomainName: { 'Fn::GetAtt': [Match.stringLikeRegexp('^CdnStaticBucket'), 'RegionalDomainName'] },
          OriginAccessControlId: Match.anyValue(),
        })]),
      },
    });
    template.hasResourceProperties('AWS::CloudFront::OriginAccessControl', {
      OriginAccessControlConfig: { OriginAccessControlOriginType: 's3', SigningBehavior: 'always' },
    });
  });

  test('a private, encrypted bucket that refuses plain HTTP', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      LoggingConfiguration: Match.absent(),
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });

  test('filled at deploy under static/, immutable, old files kept', () => {
    template.hasResourceProperties('Custom::CDKBucketDeployment', {
      DestinationBucketKeyPrefix: 'static/',
      Prune: false,
      SystemMetadata: { 'cache-control': 'public, max-age=31536000, immutable' },
    });
  });

  test('another path', () => {
    const other = Template.fromStack(build({ staticFiles: WebStaticFiles.fromDirectory(staticDir, { path: '/assets/v2/' }) }).stack);
    other.hasResourceProperties('AWS::CloudFront::Distribution', { DistributionConfig: { CacheBehaviors: [Match.objectLike({ PathPattern: 'assets/v2/*' })] } });
    other.hasResourceProperties('Custom::CDKBucketDeployment', { DestinationBucketKeyPrefix: 'assets/v2/' });
  });
});

describe('WebDistribution custom domain', () => {
  function withDomain(zone = true) {
    const stack = new Stack(new App(), 'TestStack', { env: { account: '123456789012', region: 'eu-west-1' } });
    const web = new WarmWebFunction(stack, 'Web', { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir) });
    const hostedZone = zone ? route53.HostedZone.fromHostedZoneAttributes(stack, 'Zone', { hostedZoneId: 'Z123', zoneName: 'example.com' }) : undefined;
    new WebDistribution(stack, 'Cdn', { function: web, domain: { domainName: 'www.example.com', certificate: certificate(stack), hostedZone } });
    return Template.fromStack(stack);
  }

  test('the alias, its certificate over SNI and TLS 1.2 (2021) at least', () => {
    withDomain().hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: {
        Aliases: ['www.example.com'],
        ViewerCertificate: { AcmCertificateArn: CERT_ARN, MinimumProtocolVersion: 'TLSv1.2_2021', SslSupportMethod: 'sni-only' },
      },
    });
  });

  test('the app allows the domain only, and trusts its https origin for CSRF', () => {
    const env = webEnvironment(withDomain());
    expect(env.WARM_WEB_ALLOWED_HOSTS).toBe('www.example.com');
    expect(env.WARM_WEB_CSRF_TRUSTED_ORIGINS).toBe('https://www.example.com');
  });

  test('A and AAAA alias records in the zone', () => {
    const template = withDomain();
    for (const type of ['A', 'AAAA']) {
      template.hasResourceProperties('AWS::Route53::RecordSet', {
        Name: 'www.example.com.',
        Type: type,
        HostedZoneId: 'Z123',
        AliasTarget: { DNSName: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Cdn'), 'DomainName'] }, HostedZoneId: Match.anyValue() },
      });
    }
  });

  test('no records without a zone', () => {
    withDomain(false).resourceCountIs('AWS::Route53::RecordSet', 0);
  });

  test('another minimum protocol version', () => {
    const { stack } = build({
      domain: { domainName: 'www.example.com', certificate: acm.Certificate.fromCertificateArn(new Stack(), 'C', CERT_ARN) },
      minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2025,
    });
    Template.fromStack(stack).hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: { ViewerCertificate: { MinimumProtocolVersion: 'TLSv1.2_2025' } },
    });
  });
});

describe('WebDistribution options', () => {
  test('logBucket: CloudFront logs under cloudfront/, the static bucket\'s under static-bucket/', () => {
    const stack = new Stack(new App(), 'TestStack');
    const logBucket = new s3.Bucket(stack, 'Logs', { objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED });
    const web = new WarmWebFunction(stack, 'Web', { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir) });
    new WebDistribution(stack, 'Cdn', { function: web, logBucket, staticFiles: WebStaticFiles.fromDirectory(staticDir) });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: { Logging: { Bucket: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Logs'), 'RegionalDomainName'] }, Prefix: 'cloudfront/' } },
    });
    template.hasResourceProperties('AWS::S3::Bucket', {
      LoggingConfiguration: { DestinationBucketName: { Ref: Match.stringLikeRegexp('^Logs') }, LogFilePrefix: 'static-bucket/' },
    });
  });

  test('webAclArn and priceClass', () => {
    const { stack } = build({ webAclArn: WEB_ACL_ARN, priceClass: cloudfront.PriceClass.PRICE_CLASS_ALL });
    Template.fromStack(stack).hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: { WebACLId: WEB_ACL_ARN, PriceClass: 'PriceClass_All' },
    });
  });

  test('the origin read timeout follows the function timeout up to 60 s, with a warning beyond', () => {
    const short = build({}, { timeout: Duration.seconds(10) });
    Template.fromStack(short.stack).hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: { Origins: [Match.objectLike({ CustomOriginConfig: Match.objectLike({ OriginReadTimeout: 10 }) })] },
    });
    Annotations.fromStack(short.stack).hasNoWarning('*', Match.stringLikeRegexp('CloudFront waits'));
    const long = build({}, { timeout: Duration.minutes(2) });
    Template.fromStack(long.stack).hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: { Origins: [Match.objectLike({ CustomOriginConfig: Match.objectLike({ OriginReadTimeout: 60 }) })] },
    });
    Annotations.fromStack(long.stack).hasWarning('/TestStack/Cdn',
      Match.stringLikeRegexp('TestStack/Web may run 2 minutes but CloudFront waits 1 minute for an origin'));
  });

  test('a domain name given as a token is not validated, and reaches the app as is', () => {
    const domainName = Lazy.string({ produce: () => 'shop.example.org' });
    const { stack } = build({ domain: { domainName, certificate: acm.Certificate.fromCertificateArn(new Stack(), 'C', CERT_ARN) } });
    expect(webEnvironment(Template.fromStack(stack)).WARM_WEB_ALLOWED_HOSTS).toBe('shop.example.org');
  });
});

describe('WebDistribution cdk-nag', () => {
  test.each([
    ['defaults', {}],
    ['static files, domain, zone, WAF', { staticFiles: WebStaticFiles.fromDirectory(staticDir), webAclArn: WEB_ACL_ARN, domain: 'zone' }],
  ])('%s: no unacknowledged AwsSolutions finding', (_name, options) => {
    const stack = new Stack(new App(), 'TestStack', { env: { account: '123456789012', region: 'eu-west-1' } });
    const web = new WarmWebFunction(stack, 'Web', { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir) });
    const { domain, ...rest } = options as Partial<WebDistributionProps> & { domain?: string };
    new WebDistribution(stack, 'Cdn', {
      function: web,
      ...rest,
      domain: domain ? {
        domainName: 'www.example.com',
        certificate: certificate(stack),
        hostedZone: route53.HostedZone.fromHostedZoneAttributes(stack, 'Zone', { hostedZoneId: 'Z123', zoneName: 'example.com' }),
      } : undefined,
    });
    expect(new AwsSolutionsChecks().validateScope(stack).violations).toEqual([]);
  });

  test('the acknowledgments are specific: a second bucket deployment of the user\'s own is still reported', () => {
    const { stack, cdn } = build({ staticFiles: WebStaticFiles.fromDirectory(staticDir) });
    expect(cdn.staticBucket).toBeDefined();
    const own = new s3.Bucket(stack, 'Own', { enforceSSL: true });
    new s3deploy.BucketDeployment(stack, 'OwnDeployment', {
      sources: [s3deploy.Source.asset(staticDir)],
      destinationBucket: own,
      memoryLimit: 512,
    });
    const rules = new AwsSolutionsChecks().validateScope(stack).violations.map((v) => v.ruleName);
    expect(rules).toContain('AwsSolutions-S1');
    expect(rules.some((r) => r.startsWith('AwsSolutions-IAM5[Resource::<Own'))).toBe(true);
  });
});

describe('WebDistribution errors', () => {
  test.each([
    ['no endpoint', { endpoint: WebEndpoint.none() }, /WebDistribution TestStack\/Cdn: function TestStack\/Web has no endpoint; CloudFront fronts its Function URL: give it endpoint: WebEndpoint.functionUrl\(\)/],
    ['an HTTP API', { endpoint: WebEndpoint.httpApi() }, /function TestStack\/Web has an HTTP API; CloudFront fronts its Function URL/],
    ['AWS_IAM auth', { endpoint: WebEndpoint.functionUrl({ authType: lambda.FunctionUrlAuthType.AWS_IAM }) }, /the Function URL of TestStack\/Web has authType AWS_IAM; .*use authType NONE/],
  ])('a function with %s', (_name, fnProps, message) => {
    expect(() => build({}, fnProps as Partial<WarmWebFunctionProps>)).toThrow(message);
  });

  test('a second distribution for the same function', () => {
    const { stack, web } = build();
    expect(() => new WebDistribution(stack, 'Cdn2', { function: web }))
      .toThrow(/WebDistribution TestStack\/Cdn2: function TestStack\/Web is already behind WebDistribution TestStack\/Cdn/);
  });

  test.each(['static/', '/static', '/', '/static/*', '/sta tic/', '//static/', '/static?/'])('static path %p', (value) => {
    expect(() => build({ staticFiles: WebStaticFiles.fromDirectory(staticDir, { path: value }) }))
      .toThrow(`WebDistribution TestStack/Cdn staticFiles path must start and end with '/' and hold only letters, digits, '.', '_', '~', '-' between them (for example '/static/'), got '${value}'`);
  });

  test('a static path given as a token', () => {
    expect(() => build({ staticFiles: WebStaticFiles.fromDirectory(staticDir, { path: Lazy.string({ produce: () => '/static/' }) }) }))
      .toThrow(/WebDistribution TestStack\/Cdn staticFiles path must be known at synth/);
  });

  test('a static directory that does not exist', () => {
    expect(() => build({ staticFiles: WebStaticFiles.fromDirectory('/nonexistent/static') }))
      .toThrow("WebDistribution TestStack/Cdn staticFiles: WebStaticFiles.fromDirectory: directory '/nonexistent/static' does not exist");
  });

  test.each(['WWW.example.com', '*.example.com', 'https://www.example.com', 'www.example.com.', 'localhost', 'www..example.com'])('domain name %p', (value) => {
    expect(() => build({ domain: { domainName: value, certificate: acm.Certificate.fromCertificateArn(new Stack(), 'C', CERT_ARN) } }))
      .toThrow(`WebDistribution TestStack/Cdn domain.domainName must be a lower-case host name such as 'www.example.com' (no wildcard, no scheme, no trailing dot), got '${value}'`);
  });

  test('minimumProtocolVersion without a domain', () => {
    expect(() => build({ minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 }))
      .toThrow("WebDistribution TestStack/Cdn minimumProtocolVersion is TLSv1.2_2021 but there is no domain: CloudFront's default *.cloudfront.net certificate fixes its own; give domain to choose it");
  });

  test('a certificate outside us-east-1', () => {
    const elsewhere = 'arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555';
    expect(() => build({ domain: { domainName: 'www.example.com', certificate: acm.Certificate.fromCertificateArn(new Stack(), 'C', elsewhere) } }))
      .toThrow('WebDistribution TestStack/Cdn domain.certificate is in eu-west-1; CloudFront only uses ACM certificates in us-east-1');
  });

  test.each([['eu-west-1', true], ['us-east-1', false]])('a certificate made in a stack in %s', (region, fails) => {
    const stack = new Stack(new App(), 'TestStack', { env: { account: '123456789012', region } });
    const web = new WarmWebFunction(stack, 'Web', { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir) });
    const cert = new acm.Certificate(stack, 'Cert', { domainName: 'www.example.com' });
    const make = () => new WebDistribution(stack, 'Cdn', { function: web, domain: { domainName: 'www.example.com', certificate: cert } });
    if (fails) {
      expect(make).toThrow('WebDistribution TestStack/Cdn domain.certificate is in eu-west-1; CloudFront only uses ACM certificates in us-east-1');
    } else {
      expect(make).not.toThrow();
    }
  });

  test('a domain outside the hosted zone', () => {
    const stack = new Stack(new App(), 'TestStack');
    const web = new WarmWebFunction(stack, 'Web', { app: WebApp.wsgi('app:app'), code: WebCode.fromDirectory(codeDir) });
    const hostedZone = route53.HostedZone.fromHostedZoneAttributes(stack, 'Zone', { hostedZoneId: 'Z123', zoneName: 'example.com' });
    expect(() => new WebDistribution(stack, 'Cdn', { function: web, domain: { domainName: 'www.notexample.com', certificate: certificate(stack), hostedZone } }))
      .toThrow("WebDistribution TestStack/Cdn domain.domainName 'www.notexample.com' is not in domain.hostedZone 'example.com'");
  });

  test.each([
    'arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/site/a1b2',
    'a1b2c3d4-5678-90ab-cdef-EXAMPLE11111',
  ])('web ACL %p', (value) => {
    expect(() => build({ webAclArn: value })).toThrow(`WebDistribution TestStack/Cdn webAclArn must be the ARN of a WAFv2 web ACL with scope CLOUDFRONT (arn:aws:wafv2:us-east-1:<account>:global/webacl/<name>/<id>), got '${value}'`);
  });
});
