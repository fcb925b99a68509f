import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Size, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks } from 'cdk-nag';
import { SlimCodeAsset, WarmWebFunction, WarmWebFunctionProps, WebApp, WebCode } from '../lib';

function appDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-slim-app-'));
  fs.mkdirSync(path.join(dir, 'mysite'));
  fs.writeFileSync(path.join(dir, 'mysite', 'wsgi.py'), 'application = None\n');
  fs.writeFileSync(path.join(dir, 'mysite', '__init__.py'), '');
  fs.writeFileSync(path.join(dir, 'big.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
  return dir;
}
const dir = appDir();

function slimStack(props: Partial<WarmWebFunctionProps> = {}) {
  const stack = new Stack(new App(), 'TestStack');
  const fn = new WarmWebFunction(stack, 'Web', { app: WebApp.wsgi('mysite.wsgi:application'), code: WebCode.fromSlimAsset(dir), ...props });
  return { stack, fn, template: Template.fromStack(stack) };
}

describe('SlimCodeAsset', () => {
  const { stack, template } = slimStack();
  const asset = stack.node.findAll().find((c) => c instanceof SlimCodeAsset) as SlimCodeAsset;

  test('the code bucket: encrypted, no public access, TLS only, retained', () => {
    template.hasResource('AWS::S3::Bucket', {
      Properties: {
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      },
      DeletionPolicy: 'Retain',
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });

  test('lifecycle: only archives tagged retired expire, after the 30-day rollback window', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([{ Id: 'ExpireRetiredArchives', Status: 'Enabled', ExpirationInDays: 30, TagFilters: [{ Key: 'warm-web:retired', Value: 'true' }] }]),
      },
    });
  });

  test('the archive key is its content hash; the function ships only a marker and the shim', () => {
    expect(asset.objectKey).toBe(`slim/${asset.sha256}.slim`);
    expect(asset.sha256).toMatch(/^[0-9a-f]{64}$/);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'warm_web.handler.handler',
      Code: { ZipFile: Match.stringLikeRegexp('loaded from S3 during INIT') },
      Layers: [{ Ref: Match.stringLikeRegexp('^WarmWebPythonShimLayer') }],
      Environment: {
        Variables: Match.objectLike({
          WARM_WEB_SLIM_BUCKET: { Ref: Match.stringLikeRegexp('^WarmWebCodeStoreBucket') },
          WARM_WEB_SLIM_KEY: asset.objectKey,
          WARM_WEB_SLIM_SHA256: asset.sha256,
          WARM_WEB_SLIM_SIZE: String(asset.archiveBytes),
          WARM_WEB_SLIM_UNPACKED: String(asset.unpackedBytes),
        }),
      },
    });
    expect(asset.unpackedBytes).toBeGreaterThanOrEqual(3 * 1024 * 1024);
    expect(asset.archiveBytes).toBeLessThan(asset.unpackedBytes);
  });

  test('the function may read its own archive, and nothing else', () => {
    const roles = template.findResources('AWS::IAM::Role', { Properties: { Description: Match.stringLikeRegexp('Execution role of TestStack/Web') } });
    const [roleId] = Object.keys(roles);
    const policies = Object.values(template.findResources('AWS::IAM::Policy'))
      .filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]));
    const s3Statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement).filter((st) => JSON.stringify(st.Action).includes('s3:'));
    expect(s3Statements).toHaveLength(1);
    expect(s3Statements[0].Action).toBe('s3:GetObject');
    expect(JSON.stringify(s3Statements[0].Resource)).toContain(`/${asset.objectKey}`);
  });

  test('a copy into the code bucket per archive, keyed on the hash', () => {
    template.hasResourceProperties('Custom::WarmWebSlimArchive', {
      Bucket: { Ref: Match.stringLikeRegexp('^WarmWebCodeStoreBucket') },
      Key: asset.objectKey,
      SourceKey: Match.stringLikeRegexp('\\.slim$'),
    });
    const ids = Object.keys(template.findResources('Custom::WarmWebSlimArchive'));
    expect(ids[0]).toContain(`Archive${asset.sha256.slice(0, 16)}`);
  });

  test('/tmp is sized from the unpacked size (at least 512 MiB)', () => {
    template.hasResourceProperties('AWS::Lambda::Function', { Handler: 'warm_web.handler.handler', EphemeralStorage: { Size: 512 } });
    expect(asset.ephemeralStorageSize.toMebibytes()).toBe(512);
  });

  test('no unacknowledged cdk-nag finding', () => {
    expect(new AwsSolutionsChecks().validateScope(stack).violations).toEqual([]);
  });
});

describe('SlimCodeAsset in a VPC and its errors', () => {
  test('adds one S3 gateway endpoint to the VPC, however many functions use slim code', () => {
    const stack = new Stack(new App(), 'TestStack');
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'app', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
    for (const id of ['A', 'B']) {
      new WarmWebFunction(stack, id, { app: WebApp.wsgi('mysite.wsgi:application'), code: WebCode.fromSlimAsset(dir), vpc });
    }
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 1);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway', ServiceName: Match.objectLike({ 'Fn::Join': Match.anyValue() }) });
    template.resourceCountIs('AWS::S3::Bucket', 1);
  });

  test('a given /tmp smaller than the code needs', () => {
    const big = appDir();
    fs.writeFileSync(path.join(big, 'model.bin'), Buffer.alloc(600 * 1024 * 1024));
    expect(() => slimStack({ code: WebCode.fromSlimAsset(big), ephemeralStorageSize: Size.mebibytes(600) }))
      .toThrow(/ephemeralStorageSize is 600 MiB but the slim code needs 7\d\d MiB of \/tmp to unpack/);
    expect(() => slimStack({ code: WebCode.fromSlimAsset(big), snapStart: true }))
      .toThrow(/snapStart: SnapStart needs ephemeral storage of at most 512 MiB, got 7\d\d MiB \(sized for the slim code\)/);
  });

  test('a missing or empty directory', () => {
    expect(() => slimStack({ code: WebCode.fromSlimAsset('/no/such/dir') })).toThrow(/SlimCodeAsset: directory '\/no\/such\/dir' does not exist/);
    // The error names the asset the function would have made.
    expect(() => slimStack({ code: WebCode.fromSlimAsset('/no/such/dir') })).toThrow(/^TestStack\/Web\/SlimCode: SlimCodeAsset: directory/);
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-empty-'));
    expect(() => slimStack({ code: WebCode.fromSlimAsset(empty) })).toThrow(/SlimCodeAsset: directory '.*' has no files to deploy/);
  });

  test('fromDirectory over 250 MiB points at slim code', () => {
    const big = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-big-'));
    fs.writeFileSync(path.join(big, 'app.py'), '');
    fs.writeFileSync(path.join(big, 'data.bin'), '');
    fs.truncateSync(path.join(big, 'data.bin'), 260 * 1024 * 1024);
    expect(() => WebCode.fromDirectory(big)).toThrow(/use WebCode.fromSlimAsset \(up to 10 GB, loaded during INIT\) or WebCode.fromImageAsset/);
  });
});

/** The docker image entries of a stack's asset manifest. */
function dockerImagesOf(app: App, stack: Stack): Array<{ source: Record<string, unknown> }> {
  const assembly = app.synth();
  const manifest = JSON.parse(fs.readFileSync(path.join(assembly.directory, `${stack.stackName}.assets.json`), 'utf-8'));
  return Object.values(manifest.dockerImages ?? {});
}

describe('container images', () => {
  const imageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-image-'));
  fs.writeFileSync(path.join(imageDir, 'Dockerfile'), 'FROM public.ecr.aws/lambda/python:3.13\nCOPY --from=warm-web-shim python/warm_web ${LAMBDA_TASK_ROOT}/warm_web\n');

  test('fromImageAsset: an image function whose CMD is the shim, with the shim as a build context, no layer', () => {
    const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-out-')) });
    const stack = new Stack(app, 'TestStack');
    const fn = new WarmWebFunction(stack, 'Web', { app: WebApp.asgi('main:app'), code: WebCode.fromImageAsset(imageDir) });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Lambda::Function', {
      PackageType: 'Image',
      ImageConfig: { Command: ['warm_web.handler.handler'] },
      Architectures: ['arm64'],
      Layers: Match.absent(),
      Handler: Match.absent(),
      Runtime: Match.absent(),
      Environment: { Variables: { WARM_WEB_APP: 'main:app', WARM_WEB_APP_KIND: 'asgi' } },
    });
    template.resourceCountIs('AWS::Lambda::LayerVersion', 0);
    expect(fn.shimLayer).toBeUndefined();
    const [image] = dockerImagesOf(app, stack);
    expect(image.source).toMatchObject({ platform: 'linux/arm64' });
    expect(JSON.stringify(image.source)).toContain('"warm-web-shim":');
    expect(JSON.stringify(image.source)).toContain('python-shim-layer');
  });

  test('fromEcr: the tag or digest, CMD set to the shim', () => {
    const stack = new Stack(new App(), 'TestStack');
    const repo = ecr.Repository.fromRepositoryName(stack, 'Repo', 'web');
    new WarmWebFunction(stack, 'Web', { app: WebApp.nodeRequestListener('server.app'), code: WebCode.fromEcr(repo, 'v42') });
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', {
      PackageType: 'Image',
      Code: { ImageUri: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp(':v42$')])] }) },
      ImageConfig: { Command: ['/opt/warm-web/index.handler'] },
    });
  });

  test('errors: no Dockerfile, a bad tag, SnapStart on an image', () => {
    expect(() => WebCode.fromImageAsset(fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-nodocker-')))).toThrow(/WebCode.fromImageAsset: no Dockerfile at/);
    const stack = new Stack(new App(), 'S');
    const repo = ecr.Repository.fromRepositoryName(stack, 'Repo', 'web');
    expect(() => WebCode.fromEcr(repo, 'bad tag!')).toThrow(/WebCode.fromEcr: 'bad tag!' is neither an image tag nor a sha256 digest/);
    expect(() => new WarmWebFunction(stack, 'Web', { app: WebApp.asgi('main:app'), code: WebCode.fromImageAsset(imageDir), snapStart: true }))
      .toThrow(/snapStart: Lambda does not support SnapStart for container images/);
  });

  test('architecture x86_64 builds an amd64 image', () => {
    const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-out-')) });
    const stack = new Stack(app, 'TestStack');
    new WarmWebFunction(stack, 'Web', { app: WebApp.asgi('main:app'), code: WebCode.fromImageAsset(imageDir), architecture: lambda.Architecture.X86_64 });
    expect(dockerImagesOf(app, stack)[0].source).toMatchObject({ platform: 'linux/amd64' });
  });
});
