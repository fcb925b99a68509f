import * as fs from 'fs';
import * as path from 'path';
import { Annotations, Size } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { findCompiler, PYODIDE, PYODIDE_RELEASES, stageWithBytecode, StagedTree } from './private/bytecode';
import { ALWAYS_EXCLUDED, BYTECODE, measureDirectory } from './private/code-directory';
import { propError } from './private/errors';
import { SlimCodeAsset } from './slim-code-asset';

/** Lambda's limit on the unzipped size of a function's code and layers. */
const UNZIPPED_LIMIT = Size.mebibytes(250);


/**
 * Options for `WebCode.fromDirectory` and `WebCode.fromSlimAsset`.
 */
export interface WebCodeDirectoryOptions {
  /**
   * Glob patterns (relative to the directory) to leave out of the code package, in addition to
   * `.git`, `cdk.out`, `.venv` and `.DS_Store`, which are always left out (and the directory's own
   * `__pycache__` and `*.pyc` while `pythonBytecode` is on: they are replaced by bytecode for the function's Python).
   *
   * @default - only the paths above are left out
   */
  readonly exclude?: string[];

  /**
   * Compile the app and its dependencies to bytecode at synth, for the function's Python minor, so that
   * no cold start compiles them (Lambda's code is read-only: Python cannot cache bytecode there, and
   * compiling Django takes about a second of every INIT). The pycs are unchecked-hash (Python reads
   * neither the source's mtime nor its text at import) and the sources stay, for tracebacks.
   *
   * The compiler is `python3.<minor>` on PATH when it is that minor, else the npm package
   * `pyodide-py3<minor>` (Pyodide: the same CPython as WebAssembly) if installed; without either, synth
   * warns and the code ships without bytecode. Compiled trees are cached by content (in the folder
   * `WARM_WEB_BYTECODE_CACHE`, default `<tmpdir>/cdk-warm-web-bytecode`), so an unchanged tree is not
   * compiled again. The directory itself is never written to.
   *
   * `false` ships the directory as it is, its own `__pycache__` included: make those pycs unchecked-hash
   * (`python -m compileall --invalidation-mode unchecked-hash`), as a zip asset does not keep mtimes.
   * Node apps are never compiled.
   *
   * @default true
   */
  readonly pythonBytecode?: boolean;
}

/**
 * Options for `WebCode.fromImageAsset`.
 */
export interface WebCodeImageAssetOptions {
  /**
   * The Dockerfile, relative to the directory.
   *
   * @default 'Dockerfile'
   */
  readonly file?: string;

  /**
   * Build arguments.
   *
   * @default - none
   */
  readonly buildArgs?: Record<string, string>;
}

/**
 * What the function tells a `WebCode` when binding it.
 */
export interface WebCodeBindOptions {
  /** The runtime shim's handler, which an image's CMD must name. */
  readonly handler: string;
  /** The folder of the runtime shim for the app's language, offered to image builds as a build context. */
  readonly shimDirectory: string;
  /** The function's architecture. */
  readonly architecture: lambda.Architecture;
  /** The function's role, for code that the function reads at run time. */
  readonly role: iam.IRole;
  /**
   * The function's runtime: Python code is compiled to bytecode for its minor.
   *
   * @default - unknown: Python code ships without bytecode, with a synth warning
   */
  readonly runtime?: lambda.Runtime;
}

/**
 * What a `WebCode` gives the function it is bound to.
 */
export interface WebCodeConfig {
  /** The Lambda code of the function. */
  readonly code: lambda.Code;

  /**
   * Extra environment variables the runtime shim needs to find the code.
   *
   * @default - none
   */
  readonly environment?: Record<string, string>;

  /**
   * Whether the code is a container image (the shim is then inside it, not in a layer).
   *
   * @default false
   */
  readonly image?: boolean;

  /**
   * The /tmp the code needs at run time.
   *
   * @default - no need beyond Lambda's 512 MiB
   */
  readonly ephemeralStorageSize?: Size;
}

/**
 * Where a web app's code comes from.
 */
export abstract class WebCode {
  /**
   * A local directory holding the app and its installed dependencies, deployed as a zip asset.
   *
   * The directory must exist, must not be empty, and must stay under Lambda's 250 MB unzipped limit
   * (checked at synth time, after exclusions).
   *
   * @param directory path to the directory
   */
  public static fromDirectory(directory: string, options: WebCodeDirectoryOptions = {}): WebCode {
    return new DirectoryCode(directory, options);
  }

  /**
   * A local directory of any size up to Lambda's 10 GB of /tmp, deployed as a content-addressed archive
   * in the stack's code bucket (a `SlimCodeAsset`). The function ships only the shim, which fetches and
   * unpacks the archive during INIT, streamed and in parallel, and checks its SHA-256.
   *
   * @param directory path to the directory
   */
  public static fromSlimAsset(directory: string, options: WebCodeDirectoryOptions = {}): WebCode {
    return new SlimCode(directory, options);
  }

  /**
   * A container image built from a directory with a Dockerfile (up to 10 GB). The build gets the runtime
   * shim as the named build context `warm-web-shim`; the Dockerfile copies it in:
   * `COPY --from=warm-web-shim python/warm_web ${LAMBDA_TASK_ROOT}/warm_web` (Python) or
   * `COPY --from=warm-web-shim warm-web /opt/warm-web` (Node). The image's CMD is set to the shim.
   *
   * An image's code is read-only on Lambda too, so a Python image should carry its bytecode: compile it
   * with the image's own Python as the last step,
   * `RUN python -m compileall -q -j 0 --invalidation-mode unchecked-hash ${LAMBDA_TASK_ROOT}`.
   *
   * @param directory the Docker build context
   */
  public static fromImageAsset(directory: string, options: WebCodeImageAssetOptions = {}): WebCode {
    return new ImageAssetCode(directory, options);
  }

  /**
   * A container image in ECR that already contains the runtime shim (see `fromImageAsset` for the
   * Dockerfile lines). The image's CMD is set to the shim.
   *
   * @param repository the repository
   * @param tagOrDigest an image tag or a digest (`sha256:...`); a digest pins the exact image
   */
  public static fromEcr(repository: ecr.IRepository, tagOrDigest: string): WebCode {
    return new EcrCode(repository, tagOrDigest);
  }

  /**
   * Binds the code to a function.
   *
   * @param scope the construct that owns the function
   */
  public abstract bind(scope: Construct, options: WebCodeBindOptions): WebCodeConfig;
}

/** Python 3.<minor> of a Lambda runtime, or undefined for other languages. */
function pythonMinor(runtime: lambda.Runtime): number | undefined {
  const match = /^python3\.(\d+)$/.exec(runtime.name);
  return match ? Number(match[1]) : undefined;
}

/**
 * The directory staged with bytecode for the function's Python, or undefined (with a warning when
 * Python code will compile at every cold start) if it cannot or need not be.
 */
function withBytecode(scope: Construct, factory: string, directory: string, exclude: string[], runtime?: lambda.Runtime): StagedTree | undefined {
  const warn = (why: string) => Annotations.of(scope).addWarningV2('cdk-warm-web:noBytecode',
    `${factory}('${directory}'): ${why}; every cold start compiles the Python modules it imports `
    + '(set pythonBytecode: false if the directory ships its own unchecked-hash bytecode)');
  if (!runtime) {
    warn('the function did not pass its runtime (WebCodeBindOptions.runtime), so no bytecode was compiled');
    return undefined;
  }
  const minor = pythonMinor(runtime);
  if (minor === undefined) return undefined;
  const compiler = findCompiler(minor);
  if (!compiler) {
    const release = PYODIDE_RELEASES[minor];
    warn(`no compiler for ${runtime.name} bytecode: put python3.${minor} on PATH`
      + (release ? `, or install Pyodide for it (npm i -D ${PYODIDE(minor)}@npm:pyodide@${release})` : ''));
    return undefined;
  }
  const staged = stageWithBytecode(directory, exclude, compiler);
  if (staged.compiled + staged.failed.length === 0) return undefined; // no Python: nothing to gain
  if (staged.failed.length > 0) {
    // They fail the same way if imported: often test fixtures or Python 2 files of dependencies, never imported.
    Annotations.of(scope).addInfo(`${factory}: ${staged.failed.length} file(s) did not compile for ${runtime.name} `
      + `and ship without bytecode: ${staged.failed.slice(0, 5).join(', ')}${staged.failed.length > 5 ? ', ...' : ''}`);
  }
  return staged;
}

class DirectoryCode extends WebCode {
  private readonly directory: string;
  private readonly exclude: string[];
  private readonly bytes: number;

  constructor(directory: string, private readonly options: WebCodeDirectoryOptions) {
    super();
    this.directory = path.resolve(directory);
    this.exclude = [...ALWAYS_EXCLUDED, ...(options.pythonBytecode === false ? [] : BYTECODE), ...(options.exclude ?? [])];
    this.bytes = measureDirectory('WebCode.fromDirectory', directory, this.exclude).bytes;
    if (this.bytes > UNZIPPED_LIMIT.toBytes()) {
      throw new Error(overLimit(directory, this.bytes, ''));
    }
  }

  public bind(scope: Construct, options: WebCodeBindOptions): WebCodeConfig {
    const staged = this.options.pythonBytecode === false ? undefined
      : withBytecode(scope, 'WebCode.fromDirectory', this.directory, this.exclude, options.runtime);
    if (!staged) {
      return { code: lambda.Code.fromAsset(this.directory, { exclude: this.exclude }) };
    }
    if (this.bytes + staged.pycBytes > UNZIPPED_LIMIT.toBytes()) {
      throw propError(scope, overLimit(this.directory, this.bytes + staged.pycBytes, ' with its bytecode (pythonBytecode: false ships it without)'));
    }
    return { code: lambda.Code.fromAsset(staged.directory, { assetHash: staged.hash }) };
  }
}

function overLimit(directory: string, bytes: number, what: string): string {
  const mb = (bytes / 1024 / 1024).toFixed(1);
  return `WebCode.fromDirectory: '${directory}' holds ${mb} MiB${what}, over Lambda's 250 MiB unzipped limit; `
    + 'use WebCode.fromSlimAsset (up to 10 GB, loaded during INIT) or WebCode.fromImageAsset';
}

class SlimCode extends WebCode {
  constructor(private readonly directory: string, private readonly options: WebCodeDirectoryOptions) {
    super();
  }

  public bind(scope: Construct, options: WebCodeBindOptions): WebCodeConfig {
    // What SlimCodeAsset would find, before anything is staged: a missing or empty directory is named.
    measureDirectory(`${scope.node.path}/SlimCode: SlimCodeAsset`, this.directory, [...ALWAYS_EXCLUDED, ...(this.options.exclude ?? [])]);
    const exclude = [...ALWAYS_EXCLUDED, ...BYTECODE, ...(this.options.exclude ?? [])];
    // The archive is packed from the staged copy: its bytecode is what the function's Python reads.
    const staged = this.options.pythonBytecode === false ? undefined
      : withBytecode(scope, 'WebCode.fromSlimAsset', this.directory, exclude, options.runtime);
    // The staged copy is already excluded; excluding again would drop the bytecode when `exclude` names pycs.
    const asset = new SlimCodeAsset(scope, 'SlimCode', staged ? { directory: staged.directory } : { directory: this.directory, exclude: this.options.exclude });
    asset.grantRead(options.role);
    return {
      // The function's own code is only a marker: the app arrives from S3 during INIT.
      code: lambda.Code.fromInline('# cdk-warm-web: the app is loaded from S3 during INIT (WARM_WEB_SLIM_*)'),
      environment: asset.environment,
      ephemeralStorageSize: asset.ephemeralStorageSize,
    };
  }
}

class ImageAssetCode extends WebCode {
  constructor(private readonly directory: string, private readonly options: WebCodeImageAssetOptions) {
    super();
    const dockerfile = path.join(directory, options.file ?? 'Dockerfile');
    if (!fs.existsSync(dockerfile)) {
      throw new Error(`WebCode.fromImageAsset: no Dockerfile at '${dockerfile}'`);
    }
  }

  public bind(_scope: Construct, options: WebCodeBindOptions): WebCodeConfig {
    return {
      code: lambda.Code.fromAssetImage(this.directory, {
        file: this.options.file,
        buildArgs: this.options.buildArgs,
        buildContexts: { 'warm-web-shim': options.shimDirectory },
        cmd: [options.handler],
        platform: options.architecture === lambda.Architecture.ARM_64 ? Platform.LINUX_ARM64 : Platform.LINUX_AMD64,
      }),
      image: true,
    };
  }
}

class EcrCode extends WebCode {
  constructor(private readonly repository: ecr.IRepository, private readonly tagOrDigest: string) {
    super();
    if (!/^(sha256:[0-9a-f]{64}|[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$/.test(tagOrDigest)) {
      throw new Error(`WebCode.fromEcr: '${tagOrDigest}' is neither an image tag nor a sha256 digest`);
    }
  }

  public bind(_scope: Construct, options: WebCodeBindOptions): WebCodeConfig {
    return { code: lambda.Code.fromEcrImage(this.repository, { tagOrDigest: this.tagOrDigest, cmd: [options.handler] }), image: true };
  }
}
