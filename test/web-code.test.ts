import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { WebCode } from '../lib';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-code-'));
}

describe('WebCode.fromDirectory', () => {
  test('binds to a zip asset of the directory', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'app.py'), 'app = None\n');
    const stack = new Stack(new App(), 'S');
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    const config = WebCode.fromDirectory(dir, { pythonBytecode: false })
      .bind(stack, { handler: 'h', shimDirectory: dir, architecture: lambda.Architecture.ARM_64, role, runtime: lambda.Runtime.PYTHON_3_14 });
    expect(config.code).toBeInstanceOf(lambda.AssetCode);
    expect(config.environment).toBeUndefined();
  });

  test('a missing directory', () => {
    expect(() => WebCode.fromDirectory('/no/such/dir')).toThrow(/WebCode.fromDirectory: directory '\/no\/such\/dir' does not exist/);
  });

  test('a file instead of a directory', () => {
    const file = path.join(tempDir(), 'app.py');
    fs.writeFileSync(file, '');
    expect(() => WebCode.fromDirectory(file)).toThrow(/WebCode.fromDirectory: '.*app.py' is not a directory/);
  });

  test('an empty directory', () => {
    const dir = tempDir();
    expect(() => WebCode.fromDirectory(dir)).toThrow(/WebCode.fromDirectory: directory '.*' has no files to deploy/);
  });

  test('a directory whose files are all excluded', () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, '__pycache__'));
    fs.writeFileSync(path.join(dir, '__pycache__', 'app.cpython-314.pyc'), 'x');
    fs.writeFileSync(path.join(dir, 'README.md'), 'x');
    expect(() => WebCode.fromDirectory(dir, { exclude: ['*.md'] })).toThrow(/has no files to deploy/);
  });

  test('over the 250 MiB unzipped limit, counted after exclusions', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'app.py'), 'app = None\n');
    const big = path.join(dir, 'model.bin');
    fs.writeFileSync(big, '');
    fs.truncateSync(big, 260 * 1024 * 1024); // sparse: no disk used
    expect(() => WebCode.fromDirectory(dir)).toThrow(/holds 260.0 MiB, over Lambda's 250 MiB unzipped limit/);
    expect(() => WebCode.fromDirectory(dir, { exclude: ['*.bin'] })).not.toThrow();
  });
});
