import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { WebCode, WebCodeDirectoryOptions } from '../lib';
import { CACHE_ENV, findCompiler, stageWithBytecode } from '../lib/private/bytecode';

// A PATH with python3.11 (this machine's own Python, standing in for "the user's python3.X") and nothing
// else, so the minors Lambda runs (3.12+) are compiled by the Pyodide dev dependencies, the same way on
// every machine.
const python311 = spawnSync('python3.11', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf-8' }).stdout.trim();
const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-bytecode-bin-'));
fs.symlinkSync(python311, path.join(bin, 'python3.11'));
const PYTHON_3_11 = new lambda.Runtime('python3.11', lambda.RuntimeFamily.PYTHON);
let cache: string;
let savedPath: string | undefined;
let savedCache: string | undefined;

beforeEach(() => {
  savedPath = process.env.PATH;
  savedCache = process.env[CACHE_ENV];
  cache = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-bytecode-cache-'));
  process.env.PATH = bin;
  process.env[CACHE_ENV] = cache;
});

afterEach(() => {
  process.env.PATH = savedPath;
  if (savedCache === undefined) delete process.env[CACHE_ENV];
  else process.env[CACHE_ENV] = savedCache;
});

function appDir(files: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-bytecode-app-'));
  const all = { 'app.py': 'import helper\nVALUE = helper.answer()\n', 'pkg/helper.py': '', 'helper.py': 'def answer():\n    return 42\n', ...files };
  for (const [rel, text] of Object.entries(all)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

/** Binds the code as a function of `runtime` would; returns the stack and the zip asset's staged folder. */
function bind(code: WebCode, runtime?: lambda.Runtime) {
  const app = new App();
  const stack = new Stack(app, 'S');
  const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  const config = code.bind(stack, { handler: 'warm_web.handler', shimDirectory: bin, architecture: lambda.Architecture.ARM_64, role, runtime });
  new lambda.Function(stack, 'Fn', { runtime: runtime ?? lambda.Runtime.PYTHON_3_14, handler: 'x', code: config.code });
  const assembly = app.synth();
  const [fn] = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function'));
  const key: string = fn.Properties.Code.S3Key;
  return { stack, assembly, key, asset: path.join(assembly.directory, `asset.${key.replace(/\.zip$/, '')}`) };
}

function fromDirectory(dir: string, options?: WebCodeDirectoryOptions) {
  return WebCode.fromDirectory(dir, options);
}

/** Imports `module` with `root` first on sys.path in a fresh python3.11; counts the sources it compiled. */
function importCounting(root: string, module: string): { value: string; compiled: string[] } {
  const script = `
import importlib.machinery, json, sys
compiled = []
original = importlib.machinery.SourceFileLoader.source_to_code
def spy(self, data, path, **kw):
    compiled.append(path.rsplit("/", 1)[-1])
    return original(self, data, path, **kw)
importlib.machinery.SourceFileLoader.source_to_code = spy
sys.path.insert(0, sys.argv[1])
module = __import__(sys.argv[2])
print(json.dumps({"value": repr(module.VALUE), "compiled": compiled}))
`;
  const run = spawnSync(python311, ['-B', '-c', script, root, module], { encoding: 'utf-8' });
  if (run.status !== 0) throw new Error(run.stderr);
  return JSON.parse(run.stdout);
}

describe('Python bytecode compiled at synth', () => {
  test('zip code carries unchecked-hash bytecode for the runtime: the import compiles nothing', () => {
    const dir = appDir();
    const { asset } = bind(fromDirectory(dir), PYTHON_3_11);
    const pyc = fs.readFileSync(path.join(asset, '__pycache__', 'app.cpython-311.pyc'));
    // PEP 552 flags: bit 0 hash-based, bit 1 check_source; unchecked-hash is 0b01.
    expect(pyc.readUInt32LE(4)).toBe(0b01);
    expect(fs.readFileSync(path.join(asset, 'app.py'), 'utf-8')).toContain('import helper'); // sources stay
    expect(fs.readdirSync(path.join(asset, 'pkg', '__pycache__'))).toEqual(['helper.cpython-311.pyc']);
    expect(importCounting(asset, 'app')).toEqual({ value: '42', compiled: [] });
    // Without the bytecode, the same import compiles both modules, as every cold start did.
    expect(importCounting(dir, 'app')).toEqual({ value: '42', compiled: ['app.py', 'helper.py'] });
    // Unchecked: Python does not read the source to validate the pyc.
    fs.writeFileSync(path.join(asset, 'helper.py'), 'def answer():\n    return 7\n');
    expect(importCounting(asset, 'app')).toEqual({ value: '42', compiled: [] });
    // Nothing was written into the user's directory.
    expect(fs.readdirSync(dir).sort()).toEqual(['app.py', 'helper.py', 'pkg']);
  });

  test('the directory\'s own bytecode is replaced, not shipped', () => {
    const dir = appDir({ '__pycache__/app.cpython-311.pyc': 'stale', '__pycache__/old.cpython-39.pyc': 'stale' });
    const { asset } = bind(fromDirectory(dir), PYTHON_3_11);
    expect(fs.readdirSync(path.join(asset, '__pycache__')).sort()).toEqual(['app.cpython-311.pyc', 'helper.cpython-311.pyc']);
    expect(fs.readFileSync(path.join(asset, '__pycache__', 'app.cpython-311.pyc')).toString()).not.toBe('stale');
  });

  test('Lambda minors compile with Pyodide; the asset hash follows the bytecode', () => {
    const dir = appDir();
    const py313 = bind(fromDirectory(dir), lambda.Runtime.PYTHON_3_13);
    const py314 = bind(fromDirectory(dir), lambda.Runtime.PYTHON_3_14);
    const without = bind(fromDirectory(dir, { pythonBytecode: false }), lambda.Runtime.PYTHON_3_14);
    expect(fs.readdirSync(path.join(py313.asset, '__pycache__')).sort()).toEqual(['app.cpython-313.pyc', 'helper.cpython-313.pyc']);
    expect(fs.readdirSync(path.join(py314.asset, '__pycache__')).sort()).toEqual(['app.cpython-314.pyc', 'helper.cpython-314.pyc']);
    expect(fs.existsSync(path.join(without.asset, '__pycache__'))).toBe(false);
    expect(new Set([py313.key, py314.key, without.key]).size).toBe(3);
    Annotations.fromStack(py313.stack).hasNoWarning('*', Match.anyValue());
  });

  test('an unchanged tree is compiled once; a changed one again', () => {
    const dir = appDir();
    const compiler = findCompiler(11)!;
    const exclude = ['**/__pycache__'];
    const first = stageWithBytecode(dir, exclude, compiler);
    const again = stageWithBytecode(dir, exclude, compiler);
    expect([first.fresh, again.fresh]).toEqual([true, false]);
    expect(again.directory).toBe(first.directory);
    expect(first.compiled).toBe(3);
    fs.writeFileSync(path.join(dir, 'helper.py'), 'def answer():\n    return 43\n');
    const changed = stageWithBytecode(dir, exclude, compiler);
    expect(changed.fresh).toBe(true);
    expect(changed.directory).not.toBe(first.directory);
    expect(fs.readdirSync(cache).sort()).toHaveLength(2); // no leftovers of the builds
    // A cleaner of the temp folder removed a file of the entry: it is built again, whole.
    fs.rmSync(path.join(changed.directory, 'pkg', '__pycache__'), { recursive: true });
    const mended = stageWithBytecode(dir, exclude, compiler);
    expect(mended.fresh).toBe(true);
    expect(mended.directory).toBe(changed.directory);
    expect(fs.readdirSync(path.join(mended.directory, 'pkg', '__pycache__'))).toEqual(['helper.cpython-311.pyc']);
    expect(mended.hash).toBe(changed.hash);
    // Same content, same bytes: the zip asset's hash does not move with the cache's location.
    const a = bind(fromDirectory(dir), PYTHON_3_11).key;
    process.env[CACHE_ENV] = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-bytecode-cache-'));
    expect(bind(fromDirectory(dir), PYTHON_3_11).key).toBe(a);
  });

  test('the 250 MiB limit counts the bytecode', () => {
    const dir = appDir();
    const sources = ['app.py', 'helper.py', 'pkg/helper.py'].reduce((sum, f) => sum + fs.statSync(path.join(dir, f)).size, 0);
    const filler = path.join(dir, 'model.bin');
    fs.writeFileSync(filler, '');
    fs.truncateSync(filler, 250 * 1024 * 1024 - sources); // exactly at the limit without bytecode
    try {
      expect(() => fromDirectory(dir)).not.toThrow();
      expect(() => bind(fromDirectory(dir), PYTHON_3_11)).toThrow(
        /WebCode.fromDirectory: '.*' holds 250.0 MiB with its bytecode \(pythonBytecode: false ships it without\), over Lambda's 250 MiB unzipped limit/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(cache, { recursive: true, force: true });
    }
  });

  test('a file that does not compile ships without bytecode, named in an info', () => {
    const dir = appDir({ 'tests/py2.py': 'print "hello"\n' });
    const { asset, stack } = bind(fromDirectory(dir), PYTHON_3_11);
    expect(fs.existsSync(path.join(asset, 'tests', 'py2.py'))).toBe(true);
    expect(fs.existsSync(path.join(asset, 'tests', '__pycache__'))).toBe(false);
    expect(fs.readdirSync(path.join(asset, '__pycache__'))).toHaveLength(2);
    Annotations.fromStack(stack).hasInfo('*', Match.stringLikeRegexp('1 file\\(s\\) did not compile for python3.11 and ship without bytecode: tests/py2.py'));
  });

  test('no compiler for the minor: a warning, and the code ships as before', () => {
    const dir = appDir({ '__pycache__/app.cpython-399.pyc': 'x' });
    const { stack, asset } = bind(fromDirectory(dir), new lambda.Runtime('python3.99', lambda.RuntimeFamily.PYTHON));
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp(
      "WebCode.fromDirectory\\('.*'\\): no compiler for python3.99 bytecode: put python3.99 on PATH; every cold start compiles"));
    expect(fs.existsSync(path.join(asset, '__pycache__'))).toBe(false);
    expect(fs.readdirSync(cache)).toEqual([]);
  });

  test('a function that does not say its runtime gets a warning', () => {
    const { stack } = bind(fromDirectory(appDir()));
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('the function did not pass its runtime \\(WebCodeBindOptions.runtime\\)'));
  });

  test('pythonBytecode: false ships the directory\'s own bytecode, with no warning', () => {
    const dir = appDir({ '__pycache__/app.cpython-314.pyc': 'mine' });
    const { stack, asset } = bind(fromDirectory(dir, { pythonBytecode: false }), lambda.Runtime.PYTHON_3_14);
    expect(fs.readFileSync(path.join(asset, '__pycache__', 'app.cpython-314.pyc'), 'utf-8')).toBe('mine');
    Annotations.fromStack(stack).hasNoWarning('*', Match.anyValue());
    expect(fs.readdirSync(cache)).toEqual([]);
  });

  test('Node apps are not compiled', () => {
    const { stack, asset } = bind(fromDirectory(appDir({ 'index.js': '' })), lambda.Runtime.NODEJS_22_X);
    expect(fs.existsSync(path.join(asset, '__pycache__'))).toBe(false);
    Annotations.fromStack(stack).hasNoWarning('*', Match.anyValue());
  });

  test.each([
    ['', undefined],
    [', also when exclude names the pycs the directory had', ['**/__pycache__', '**/*.pyc']],
  ])('slim archives are packed with the bytecode%s', (_what, exclude) => {
    const dir = appDir();
    const app = new App();
    const stack = new Stack(app, 'S');
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    WebCode.fromSlimAsset(dir, { exclude }).bind(stack, { handler: 'h', shimDirectory: bin, architecture: lambda.Architecture.ARM_64, role, runtime: lambda.Runtime.PYTHON_3_13 });
    const assembly = app.synth();
    const archive = fs.readdirSync(assembly.directory).find((f) => f.endsWith('.slim'))!;
    // The archive is gzip members (an index, then tar shards): the tar names the pycs.
    const tar = zlib.gunzipSync(fs.readFileSync(path.join(assembly.directory, archive))).toString('latin1');
    expect(tar).toContain('__pycache__/app.cpython-313.pyc');
    expect(tar).toContain('pkg/__pycache__/helper.cpython-313.pyc');
    expect(fs.existsSync(path.join(dir, '__pycache__'))).toBe(false);
  });
});
