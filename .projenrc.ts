import { awscdk, javascript, JsonFile } from 'projen';
import { UpdateSnapshot } from 'projen/lib/javascript';

const project = new awscdk.AwsCdkConstructLibrary({
  name: 'cdk-warm-web',
  description: 'Web apps (Django, Flask, FastAPI, Express, any WSGI/ASGI app or Lambda handler) on AWS Lambda that boot during INIT and stay warm.',
  author: 'cdk-warm-web maintainers',
  authorAddress: 'maintainers@users.noreply.r-seed-e198ce54.example',
  repositoryUrl: 'https://github.com/maintainers/cdk-warm-web.git',
  defaultReleaseBranch: 'main',
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,
  srcdir: 'lib',
  libdir: 'lib',
  // cdk-nag 3 needs the validation context that first shipped in 2.258.0.
  cdkVersion: '2.258.0',
  jsiiVersion: '~6.0.0',
  // Construct Hub lists packages with the awscdk keyword.
  keywords: ['awscdk', 'cdk', 'lambda', 'django', 'flask', 'fastapi', 'express', 'wsgi', 'asgi', 'cold-start'],
  // Nothing of it has run on AWS yet: experimental until it has.
  stability: 'experimental',
  publishToPypi: {
    distName: 'cdk-warm-web',
    module: 'cdk_warm_web',
  },
  devDeps: [
    // The registry's `latest` aws-cdk is a mistaken 3.0.0 that cannot read current assemblies.
    'aws-cdk@^2',
    'cdk-nag@^3',
    'esbuild',
    '@aws-sdk/client-lambda',
    '@smithy/node-http-handler',
    '@aws-sdk/client-s3',
    'pg@^8',
    'aws-sdk-client-mock',
    '@types/aws-lambda',
    'express@^5',
    '@types/express',
    // CPython 3.12, 3.13 and 3.14 as WebAssembly: they compile the Python shim's bytecode for the layer.
    'pyodide-py312@npm:pyodide@0.27.7',
    'pyodide-py313@npm:pyodide@0.29.3',
    'pyodide-py314@npm:pyodide@314.0.7',
  ],
  lambdaAutoDiscover: false,
  // A check, not a rewrite: the test task must not change the code it tests.
  eslintOptions: {
    dirs: ['lib'],
    devdirs: ['test', 'runtime', 'handlers', 'local', 'bench', 'cli', 'projenrc', '.projenrc.ts'],
    commandOptions: { fix: false },
  },
  jestOptions: {
    // A snapshot that no longer matches fails the run: template changes are reviewed, not rewritten.
    updateSnapshot: UpdateSnapshot.NEVER,
    jestConfig: {
      // lib/ holds both the sources and jsii's output: test the sources, not a stale build.
      moduleFileExtensions: ['ts', 'js', 'json', 'node'],
      testPathIgnorePatterns: ['/node_modules/', '/examples/.*/cdk.out/'],
    },
  },
  gitignore: [
    '/assets/',
    'cdk.out/',
    '.venv/',
    '/.venv-py*/',
    '__pycache__/',
    '*.pyc',
    '/bench/results/*.tmp',
    '/examples/*/build/',
    '/dist/',
    '.jsii.tabl.json',
  ],
  // No PR-title lint: commits here are plain sentences (subject ≤ 72 characters), not Conventional Commits.
  githubOptions: { mergify: false, pullRequestLint: false },
  buildWorkflow: false,
  release: false,
  depsUpgrade: false,
  pullRequestTemplate: false,
});

// The package carries what runs: compiled .js, .d.ts, .jsii, assets/, README, LICENSE, API.md. No .ts
// sources (a ts-node app with --prefer-ts-exts would load them), no runtime or handler sources (their
// bundles are in assets/), no local Lambda endpoint.
for (const pattern of ['/examples/', '/bench/', '/scripts/', '/docs/', '/.ci/', '/CONTRIBUTING.md', '.venv/', '/.venv-py*/', 'cdk.out/',
  '/lib/**/*.ts', '!/lib/**/*.d.ts', '/runtime/', '/handlers/', '/local/', '/rosetta/', '/cli/']) {
  project.addPackageIgnore(pattern);
}

// jsii compiles lib/ alone. The trees beside it (runtime shims, Lambda handlers, the local endpoint,
// benches) are bundled or run by ts-node; each has a tsconfig so tsc and eslint check them too.
const TREES = ['runtime/node', 'handlers', 'local', 'bench', 'cli'];
for (const tree of TREES) {
  const up = tree.split('/').map(() => '..').join('/');
  new JsonFile(project, `${tree}/tsconfig.json`, {
    obj: {
      extends: `${up}/tsconfig.json`,
      compilerOptions: { noEmit: true, rootDir: up, declaration: false, isolatedModules: true },
      include: ['**/*.ts'],
      exclude: ['node_modules'],
    },
  });
}
const typecheck = project.addTask('typecheck', {
  description: 'Type-check the trees that jsii does not compile (runtime, handlers, local, bench, test)',
  exec: [...TREES, 'test'].map((tree) => `tsc --noEmit -p ${tree}`).join(' && '),
});
project.testTask.prependSpawn(typecheck);

// npm ci fails on a lock made here unless every unrs-resolver binding resolves to the same release.
project.package.addField('overrides', { 'unrs-resolver': '~1.12.2' });
// Synth runs on the user's Node: jsii and aws-cdk-lib support 20 and later.
project.package.addEngine('node', '>= 20.0.0');

// Runtime shims: built into assets/ at compile time and shipped in the npm package as Lambda layers.
const bundleNodeShim = project.addTask('bundle:node-shim', {
  description: 'Bundle the Node runtime shim into the Node layer asset',
  exec: 'esbuild runtime/node/index.ts --bundle --platform=node --target=node20 --format=cjs --external:./slim '
    + '--outfile=assets/node-shim-layer/warm-web/index.js '
    + '&& esbuild runtime/node/slim.ts --bundle --platform=node --target=node20 --format=cjs '
    + '--outfile=assets/node-shim-layer/warm-web/slim.js',
});
const bundlePythonShim = project.addTask('bundle:python-shim', {
  description: 'Copy the Python runtime shim into the Python layer asset, with its bytecode for Python 3.12-3.14',
  exec: 'rm -rf assets/python-shim-layer && mkdir -p assets/python-shim-layer/python '
    + '&& cp -r runtime/python/warm_web assets/python-shim-layer/python/ '
    + '&& find assets/python-shim-layer -name __pycache__ -prune -exec rm -rf {} + '
    + '&& node scripts/compile-python-shim.js assets/python-shim-layer/python/warm_web',
});
const bundleWarmer = project.addTask('bundle:warmer', {
  description: 'Bundle the warmer function (with its AWS SDK, so the version is ours, not the runtime\'s)',
  exec: 'esbuild handlers/warmer/index.ts --bundle --platform=node --target=node22 --format=cjs --minify '
    + '--outfile=assets/warmer/index.js',
});
const bundlePgRouter = project.addTask('bundle:pg-router', {
  description: 'Bundle the Node read/write router for pg into the Node layer (pg comes from the app)',
  exec: 'esbuild runtime/node/pg-router.ts --bundle --platform=node --target=node20 --format=cjs --external:pg '
    + '--outfile=assets/node-shim-layer/warm-web/pg-router.js',
});
const bundleSlimArchive = project.addTask('bundle:slim-archive', {
  description: 'Bundle the function that copies slim code archives into the code bucket',
  exec: 'esbuild handlers/slim-archive/index.ts --bundle --platform=node --target=node22 --format=cjs --minify '
    + '--outfile=assets/slim-archive/index.js',
});
const bundlePreTraffic = project.addTask('bundle:pre-traffic', {
  description: 'Bundle the pre-traffic step of deploys (migrations and warm-up of each new version, before the live alias moves)',
  exec: 'esbuild handlers/pre-traffic/index.ts --bundle --platform=node --target=node22 --format=cjs --minify '
    + '--outfile=assets/pre-traffic/index.js',
});
// The command line (`npx cdk-warm-web manage`): one file with its AWS SDK, so the package gains no dependency.
const bundleCli = project.addTask('bundle:cli', {
  description: 'Bundle the cdk-warm-web command line (with its AWS SDK) into assets/cli',
  exec: 'esbuild cli/index.ts --bundle --platform=node --target=node20 --format=cjs --minify '
    + '--banner:js="#!/usr/bin/env node" --outfile=assets/cli/cdk-warm-web.js '
    + '&& chmod +x assets/cli/cdk-warm-web.js',
});
project.addBins({ 'cdk-warm-web': 'assets/cli/cdk-warm-web.js' });
project.preCompileTask.spawn(bundleNodeShim);
project.preCompileTask.spawn(bundleCli);
project.preCompileTask.spawn(bundleSlimArchive);
project.preCompileTask.spawn(bundlePgRouter);
project.preCompileTask.spawn(bundleWarmer);
project.preCompileTask.spawn(bundlePreTraffic);
project.preCompileTask.spawn(bundlePythonShim);

project.addTask('test:python', {
  description: 'Run the Python shim tests (needs .venv, see scripts/test-all.sh)',
  exec: '.venv/bin/python -m pytest -q test/runtime/python',
  receiveArgs: true,
});
// Every README and docstring sample must compile (fixtures in rosetta/): the tablet it writes is how the
// Python README and docstrings are rendered in Python.
const samples = project.addTask('docs:samples', {
  description: 'Compile every README and docstring sample with jsii-rosetta (--strict) into .jsii.tabl.json',
  exec: 'jsii-rosetta extract --strict .jsii',
});
// After every compile, so the package carries the tablet (Construct Hub renders the samples from it).
project.postCompileTask.spawn(samples);
const bindingsPython = project.addTask('bindings:python', {
  description: 'Generate the Python bindings (code only, samples in Python) and check every type of the API is in them',
});
bindingsPython.exec('rm -rf dist/bindings && mkdir -p dist && node scripts/python-tablet.js dist/python.tabl.json '
  + '&& jsii-pacmak --target python --code-only -o dist/bindings --rosetta-tablet dist/python.tabl.json --rosetta-unknown-snippets fail '
  + '&& node scripts/check-python-bindings.js .jsii dist/bindings/python/src/cdk_warm_web/__init__.py');
// jsii-pacmak's own Python build pins setuptools~=75.3.2 in an isolated environment; build the wheel
// from the generated sources with the setuptools and build that the venv has instead.
const packagePython = project.tasks.tryFind('package:python')!;
packagePython.reset();
packagePython.spawn(bindingsPython);
packagePython.exec('rm -rf dist/python && .venv/bin/python -m build --no-isolation --skip-dependency-check --wheel '
  + '--outdir dist/python dist/bindings/python');
project.addTask('bench:shim', {
  description: 'Benchmark the runtime shims (INIT and per-request overhead)',
  exec: 'bash bench/shim/run.sh',
});

project.addTask('bench:slim', {
  description: 'Benchmark the slim code loader against Zappa\'s way and native curl | tar on a local S3 server',
  exec: 'bash bench/slim/run.sh',
});
project.addTask('bench:init', {
  description: 'Benchmark Python INIT of the Django examples: no bytecode vs the bytecode WebCode ships vs a warm bytecode cache',
  exec: 'bash bench/init/run.sh',
});
project.addTask('bench:slim-node-init', {
  description: 'Benchmark what a Node function\'s first request waits for slim code: the CommonJS entry against an ES-module one',
  exec: 'ts-node --transpile-only bench/slim/node-init.ts',
});
project.addTask('bench:router', {
  description: 'Benchmark the Django and Node read-replica routers against direct connections',
  exec: 'bash bench/router/run.sh',
});
project.addTask('bench:warmer', {
  description: 'Benchmark the warmer against lambda-warmer and serverless-plugin-warmup on the local Lambda endpoint',
  exec: 'ts-node --transpile-only bench/warmer/run.ts',
});
project.addTask('bench:warmer-cpu', {
  description: 'Benchmark what the warmer function\'s memory (its CPU share) does to the ping cost (needs root for a cgroup CPU quota)',
  exec: 'ts-node --transpile-only bench/warmer/cpu-share.ts',
});
project.addTask('bench:warmer-tls', {
  description: 'Benchmark what opening TLS connections inside a round costs the warmer, against connections opened before it',
  exec: 'ts-node --transpile-only bench/warmer/tls-connect.ts',
});

project.synth();
