import * as fs from 'fs';
import * as path from 'path';
import { IgnoreStrategy, Size } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';

/** Lambda's limit on the unzipped size of a function's code and layers. */
const UNZIPPED_LIMIT = Size.mebibytes(250);

/** Paths no web app needs at run time; always left out of a directory's code package. */
const ALWAYS_EXCLUDED = ['.git', '**/__pycache__', '**/*.pyc', 'cdk.out', '.venv', '**/.DS_Store'];

/**
 * Options for `WebCode.fromDirectory`.
 */
export interface WebCodeDirectoryOptions {
  /**
   * Glob patterns (relative to the directory) to leave out of the code package, in addition to
   * `.git`, `__pycache__`, `*.pyc`, `cdk.out`, `.venv` and `.DS_Store`, which are always left out.
   *
   * @default - only the paths above are left out
   */
  readonly exclude?: string[];
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
   * Binds the code to a function.
   *
   * @param scope the construct that owns the function
   */
  public abstract bind(scope: Construct): WebCodeConfig;
}

class DirectoryCode extends WebCode {
  private readonly directory: string;
  private readonly exclude: string[];

  constructor(directory: string, options: WebCodeDirectoryOptions) {
    super();
    this.directory = path.resolve(directory);
    this.exclude = [...ALWAYS_EXCLUDED, ...(options.exclude ?? [])];
    if (!fs.existsSync(this.directory)) {
      throw new Error(`WebCode.fromDirectory: directory '${directory}' does not exist`);
    }
    if (!fs.statSync(this.directory).isDirectory()) {
      throw new Error(`WebCode.fromDirectory: '${directory}' is not a directory`);
    }
    const { files, bytes } = measure(this.directory, IgnoreStrategy.glob(this.directory, this.exclude));
    if (files === 0) {
      throw new Error(`WebCode.fromDirectory: directory '${directory}' has no files to deploy (after exclude patterns ${JSON.stringify(this.exclude)})`);
    }
    if (bytes > UNZIPPED_LIMIT.toBytes()) {
      const mb = (bytes / 1024 / 1024).toFixed(1);
      throw new Error(`WebCode.fromDirectory: '${directory}' holds ${mb} MiB, over Lambda's 250 MiB unzipped limit; `
        + 'exclude what the app does not need at run time (tests, docs, build tools)');
    }
  }

  public bind(_scope: Construct): WebCodeConfig {
    return { code: lambda.Code.fromAsset(this.directory, { exclude: this.exclude }) };
  }
}

function measure(root: string, ignore: IgnoreStrategy): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (ignore.ignores(full)) continue;
      if (entry.isDirectory()) {
        walk(full);
      } else {
        files += 1;
        bytes += fs.statSync(full).size;
      }
    }
  };
  walk(root);
  return { files, bytes };
}
