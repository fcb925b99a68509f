import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CustomResource, Duration, RemovalPolicy, Size, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { Construct } from 'constructs';
import { ALWAYS_EXCLUDED, checkDirectory, noFilesError } from './private/code-directory';
import { propError } from './private/errors';
import { functionRoleAndLogs } from './private/function-role';
import { packDirectory, PackResult } from './private/slim-pack';

/** Lambda's largest /tmp. */
const MAX_EPHEMERAL = Size.gibibytes(10);
/** CopyObject copies up to 5 GiB in one request. */
const MAX_ARCHIVE = Size.gibibytes(5);
/** Room in /tmp beyond the unpacked tree: the download is streamed, but the app may write there too. */
const EPHEMERAL_MARGIN = 1.2;
/** Every file and directory takes at least one filesystem block. */
const BLOCK_BYTES = 4096;

/**
 * Properties of a `SlimCodeAsset`.
 */
export interface SlimCodeAssetProps {
  /** The directory to pack: the app with its installed dependencies. */
  readonly directory: string;

  /**
   * Glob patterns to leave out, in addition to `.git`, `cdk.out`, `.venv` and `.DS_Store`. Python bytecode
   * is kept: the packer keeps it valid after unpacking, which saves compiling on every cold start.
   *
   * @default - only the paths above
   */
  readonly exclude?: string[];
}

/**
 * A web app's code as a content-addressed archive in the stack's code bucket, unpacked by the runtime
 * shim during INIT: for code far beyond Lambda's 250 MB limit, without Zappa's download on the first
 * request.
 *
 * The archive is packed at synth time and its S3 key is its SHA-256, so every published version points at
 * exactly the code it was built with, and a rollback runs the old code. The code bucket is encrypted,
 * blocks public access and refuses plain HTTP. When a deploy replaces an archive, the old one is tagged
 * `warm-web:retired` and a lifecycle rule deletes retired archives after 30 days: the window in which the
 * alias can still be moved back to an older version.
 */
export class SlimCodeAsset extends Construct {
  /** The stack's code bucket. */
  public readonly bucket: s3.IBucket;
  /** The archive's key in the code bucket. */
  public readonly objectKey: string;
  /** SHA-256 (hex) of the archive's index, which lists the SHA-256 of every shard: the content hash. */
  public readonly sha256: string;
  /** Size of the archive in bytes. */
  public readonly archiveBytes: number;
  /** Size of the unpacked tree in bytes. */
  public readonly unpackedBytes: number;
  /** The /tmp a function needs to unpack it. */
  public readonly ephemeralStorageSize: Size;
  /** What the runtime shim reads to find the archive (`WARM_WEB_SLIM_*`). */
  public readonly environment: Record<string, string>;

  constructor(scope: Construct, id: string, props: SlimCodeAssetProps) {
    super(scope, id);
    const exclude = [...ALWAYS_EXCLUDED, ...(props.exclude ?? [])];
    checkDirectory(`${this.node.path}: SlimCodeAsset`, props.directory);
    // The packer walks the tree anyway: its counts answer "is anything left to deploy?".
    const packed = pack(props.directory, exclude);
    if (packed.files + packed.symlinks === 0) {
      throw noFilesError(`${this.node.path}: SlimCodeAsset`, props.directory, exclude);
    }
    this.sha256 = packed.sha256;
    this.archiveBytes = packed.size;
    this.unpackedBytes = packed.unpackedBytes;

    const onDisk = packed.unpackedBytes + (packed.files + packed.dirs) * BLOCK_BYTES;
    const needed = Math.max(512, Math.ceil(onDisk * EPHEMERAL_MARGIN / 1024 / 1024));
    if (needed > MAX_EPHEMERAL.toMebibytes()) {
      throw propError(this, `SlimCodeAsset: '${props.directory}' unpacks to ${(onDisk / 2 ** 30).toFixed(2)} GiB; `
        + `with the ${EPHEMERAL_MARGIN}x margin it needs ${needed} MiB of /tmp, over Lambda's 10240 MiB`);
    }
    if (packed.size > MAX_ARCHIVE.toBytes()) {
      throw propError(this, `SlimCodeAsset: the archive of '${props.directory}' is ${(packed.size / 2 ** 30).toFixed(2)} GiB, over 5 GiB`);
    }
    this.ephemeralStorageSize = Size.mebibytes(needed);

    const staged = new s3assets.Asset(this, 'Staged', { path: packed.file });
    const store = CodeStore.of(this);
    this.bucket = store.bucket;
    this.objectKey = `slim/${packed.sha256}.slim`;
    store.allowCopy(staged, this.objectKey);
    // A new archive is a new resource; CloudFormation deletes the old one after a successful deploy,
    // which retires (tags) the old archive instead of deleting it.
    new CustomResource(this, `Archive${packed.sha256.slice(0, 16)}`, {
      serviceToken: store.copier.functionArn,
      resourceType: 'Custom::WarmWebSlimArchive',
      properties: { SourceBucket: staged.s3BucketName, SourceKey: staged.s3ObjectKey, Bucket: store.bucket.bucketName, Key: this.objectKey },
    });

    this.environment = {
      WARM_WEB_SLIM_BUCKET: store.bucket.bucketName,
      WARM_WEB_SLIM_KEY: this.objectKey,
      WARM_WEB_SLIM_SIZE: String(packed.size),
      WARM_WEB_SLIM_SHA256: packed.sha256,
      WARM_WEB_SLIM_UNPACKED: String(packed.unpackedBytes),
    };
  }

  /**
   * Lets a function read this archive, and nothing else in the bucket.
   */
  public grantRead(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({ grantee, actions: ['s3:GetObject'], resourceArns: [this.bucket.arnForObjects(this.objectKey)] });
  }
}

const packs = new Map<string, PackResult & { file: string }>();

/** Packs once per directory and exclusions per synth; the archive lands in a temporary folder. */
function pack(directory: string, exclude: string[]): PackResult & { file: string } {
  const key = JSON.stringify([path.resolve(directory), exclude]);
  let packed = packs.get(key);
  if (!packed) {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-slim-')), 'code.slim');
    packed = { ...packDirectory(directory, file, { exclude }), file };
    packs.set(key, packed);
  }
  return packed;
}

/** The stack's code bucket and the function that copies archives into it and retires old ones. */
class CodeStore extends Construct {
  public static of(scope: Construct): CodeStore {
    const stack = Stack.of(scope);
    return (stack.node.tryFindChild('WarmWebCodeStore') as CodeStore | undefined) ?? new CodeStore(stack, 'WarmWebCodeStore');
  }

  public readonly bucket: s3.Bucket;
  public readonly copier: lambda.Function;
  private readonly role: iam.Role;

  private constructor(scope: Construct, id: string) {
    super(scope, id);
    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [{
        id: 'ExpireRetiredArchives',
        tagFilters: { 'warm-web:retired': 'true' },
        expiration: Duration.days(30),
      }, {
        id: 'AbortIncompleteUploads',
        abortIncompleteMultipartUploadAfter: Duration.days(1),
      }],
    });
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'Only the deploy-time copier writes here and each function role reads only its own archive key. '
        + 'A replaced or altered object is refused, not run: the runtime checks every byte against the SHA-256 in '
        + 'the function configuration. No per-object audit trail is kept here (CloudTrail logs object reads and '
        + 'writes only with data events): enable data events or server access logs if you need one.',
    });

    const { role, logGroup } = functionRoleAndLogs(this, { role: 'CopierRole', logGroup: 'CopierLogs' }, {
      description: 'cdk-warm-web: copies slim code archives into the code bucket and retires old ones',
    });
    // Retiring tags archives the current template no longer names, so tagging covers the whole prefix.
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['s3:PutObjectTagging'],
      resources: [this.bucket.arnForObjects('slim/*')],
    }));
    this.role = role;
    this.copier = new lambda.Function(this, 'Copier', {
      description: 'cdk-warm-web: copies slim code archives into the code bucket, retires replaced ones',
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(path.join(__dirname, '..', 'assets', 'slim-archive')),
      memorySize: 256,
      timeout: Duration.minutes(5),
      role,
      logGroup,
    });
    const bucketId = Stack.of(this).resolve((this.bucket.node.defaultChild as s3.CfnBucket).logicalId);
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/slim/*]`,
      reason: 'Tagging only, on the code bucket\'s slim/ prefix: a replaced archive is retired after the template '
        + 'that named its key is gone, so the key cannot be listed in the policy.',
    });
  }

  /** Lets the copier read one staged archive and write it under its key. */
  public allowCopy(staged: s3assets.Asset, key: string) {
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['s3:GetObject'],
      resources: [Stack.of(this).formatArn({ service: 's3', region: '', account: '', resource: staged.s3BucketName, resourceName: staged.s3ObjectKey })],
    }));
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['s3:PutObject', 's3:PutObjectTagging'],
      resources: [this.bucket.arnForObjects(key)],
    }));
  }
}
