// The package as users get it: packed the way the release packs it (jsii-pacmak --target js), installed
// with npm into fresh CDK apps, synthesized with the CDK CLI. Two apps: the classic ts-node one
// (`ts-node --prefer-ts-exts`, which loads a package's .ts files when it ships them) and the app that the
// current `cdk init app --language typescript` writes; each on the lowest aws-cdk-lib our peer range
// allows and on the newest. A deprecation warning fails the run: users on the newest aws-cdk-lib see them.
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'node_modules', '.bin');
const peerRange: string = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf-8')).peerDependencies['aws-cdk-lib'];
const LOWEST = peerRange.replace(/^\^/, '');

const STACK = `import { Stack, StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { WarmWebFunction, WebApp, WebCode } from 'cdk-warm-web';

export class SiteStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    new WarmWebFunction(this, 'Web', {
      app: WebApp.wsgi('app:application'),
      code: WebCode.fromDirectory('site'),
      warming: { concurrency: 2 },
    });
  }
}
`;

// Every construct, through WarmWebStack (database and cache included), beside a stack of its own.
const BIN_APP = `import { App } from 'aws-cdk-lib';
import { RouterDatabase, WarmWebStack, WebApp, WebCode } from 'cdk-warm-web';
import { SiteStack } from '../lib/site-stack';

const app = new App();
new SiteStack(app, 'SiteStack');
new WarmWebStack(app, 'Prod', {
  web: { app: WebApp.wsgi('app:application'), code: WebCode.fromDirectory('site'), warming: { concurrency: 2 } },
  database: { database: RouterDatabase.aurora({ readers: 1 }) },
  cache: {},
});
`;

const WSGI_APP = `def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
`;

let work: string;
let tarball: string;
let newest: string;

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-consumer-'));
  // The release's packer; it packs what the compiled tree holds (the test run compiles first).
  execFileSync(path.join(BIN, 'jsii-pacmak'), ['--target', 'js', '-o', path.join(work, 'dist')], { cwd: ROOT, stdio: 'pipe' });
  tarball = path.join(work, 'dist', 'js', fs.readdirSync(path.join(work, 'dist', 'js')).find((f) => f.endsWith('.tgz'))!);
  newest = npm(['view', 'aws-cdk-lib', 'version'], work).trim();
}, 120_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function npm(args: string[], cwd: string): string {
  return execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf-8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function write(dir: string, files: Record<string, string>) {
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
}

/** Runs `cdk synth` the way the app's cdk.json says; returns everything it printed. */
function synth(dir: string): string {
  const run = spawnSync(path.join(BIN, 'cdk'), ['synth', '--quiet', '--no-notices', '-o', 'cdk.out'], {
    cwd: dir, encoding: 'utf-8', env: { ...process.env, CI: 'true', JSII_DEPRECATED: 'warn' },
  });
  const output = `${run.stdout}\n${run.stderr}`;
  if (run.status !== 0) throw new Error(`cdk synth failed in ${dir}:\n${output}`);
  return output;
}

function expectSynthesized(dir: string, output: string) {
  expect(output).not.toMatch(/deprecated/i);
  const types = (stack: string) => Object.values(JSON.parse(fs.readFileSync(path.join(dir, 'cdk.out', `${stack}.template.json`), 'utf-8'))
    .Resources as Record<string, { Type: string }>).map((r) => r.Type);
  expect(types('SiteStack')).toEqual(expect.arrayContaining(['AWS::Lambda::Function', 'AWS::Lambda::Alias', 'AWS::Lambda::Url', 'AWS::Lambda::LayerVersion']));
  expect(types('Prod')).toEqual(expect.arrayContaining(['AWS::RDS::DBCluster', 'AWS::RDS::DBProxy', 'AWS::ElastiCache::ServerlessCache', 'AWS::Scheduler::Schedule']));
  // What the package ships is what the layer asset holds: the bundled shim, not sources.
  const packed = path.join(dir, 'node_modules', 'cdk-warm-web');
  expect(fs.existsSync(path.join(packed, 'assets', 'python-shim-layer', 'python', 'warm_web', 'handler.py'))).toBe(true);
}

/** The classic app: CommonJS, `ts-node --prefer-ts-exts`, a strict tsconfig with noUncheckedIndexedAccess. */
function classicApp(cdkLib: string): string {
  const dir = path.join(work, `classic-${cdkLib}`);
  write(dir, {
    'package.json': JSON.stringify({ name: 'classic', version: '0.0.0', private: true }),
    'cdk.json': JSON.stringify({ app: 'npx ts-node --prefer-ts-exts bin/app.ts' }),
    'tsconfig.json': JSON.stringify({
      compilerOptions: {
        target: 'ES2020',
        module: 'commonjs',
        lib: ['es2020'],
        strict: true,
        noUncheckedIndexedAccess: true,
        noImplicitReturns: true,
        skipLibCheck: false,
        types: ['node'],
      },
      exclude: ['node_modules', 'cdk.out'],
    }),
    'bin/app.ts': BIN_APP,
    'lib/site-stack.ts': STACK,
    'site/app.py': WSGI_APP,
  });
  // Not --prefer-offline: a cached packument can predate the newest release's own dependencies (ETARGET).
  npm(['install', tarball, `aws-cdk-lib@${cdkLib}`, 'constructs@^10', 'ts-node@^10', 'typescript@~5.9', '@types/node@^22'], dir);
  return dir;
}

/** The app the installed CDK CLI's `cdk init app --language typescript` writes, with our stack in it. */
function initApp(cdkLib: string): string {
  const dir = path.join(work, `init-${cdkLib}`);
  fs.mkdirSync(dir);
  execFileSync(path.join(BIN, 'cdk'), ['init', 'app', '--language', 'typescript', '--generate-only'], { cwd: dir, stdio: 'pipe' });
  // The template's cdk.json runs bin/<folder name>.ts: that file becomes our app.
  const binFile = fs.readdirSync(path.join(dir, 'bin')).find((f) => f.endsWith('.ts'))!;
  write(dir, { [`bin/${binFile}`]: BIN_APP, 'lib/site-stack.ts': STACK, 'site/app.py': WSGI_APP });
  // One install, as a user would after adding the package: the template's dependencies with ours, and
  // aws-cdk-lib at the version under test. Its test runner (jest, swc) is left out: synth does not use it.
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf-8'));
  manifest.dependencies = { ...manifest.dependencies, 'aws-cdk-lib': cdkLib, 'cdk-warm-web': `file:${tarball}` };
  for (const name of ['jest', '@swc/core', '@swc/jest']) delete manifest.devDependencies[name];
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
  npm(['install'], dir);
  return dir;
}

describe.each([['lowest', () => LOWEST], ['newest', () => newest]])('on the %s aws-cdk-lib', (_label, version) => {
  test('a classic ts-node app synthesizes with the package, strict tsconfig, no deprecation warning', () => {
    const dir = classicApp(version());
    expect(fs.readdirSync(path.join(dir, 'node_modules', 'cdk-warm-web', 'lib')).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    // ts-node type-checks the app against the package's declarations (skipLibCheck off).
    expectSynthesized(dir, synth(dir));
  }, 300_000);

  test('the current `cdk init app` template synthesizes with the package, no deprecation warning', () => {
    const dir = initApp(version());
    expectSynthesized(dir, synth(dir));
  }, 300_000);
});

test('the package carries only what runs', () => {
  const listing = execFileSync('tar', ['tzf', tarball], { encoding: 'utf-8' }).split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
  const unexpected = listing.filter((f) => !(/^lib\/.*\.(js|d\.ts)$/.test(f) || f.startsWith('assets/')
    || ['.jsii', '.jsii.tabl.json', 'API.md', 'LICENSE', 'README.md', 'package.json'].includes(f)));
  expect(unexpected).toEqual([]);
  expect(listing.filter((f) => /^lib\/(runtime|local)\/|\.lambda\.|\.ci\//.test(f))).toEqual([]);
  expect(listing).toEqual(expect.arrayContaining(['lib/index.js', 'lib/index.d.ts', '.jsii', 'assets/warmer/index.js', 'assets/node-shim-layer/warm-web/index.js']));
});
