// bench:init — Django's INIT import on each Lambda Python minor this machine runs natively, three ways
// side by side: no bytecode (the code as WebCode shipped it before, and as Zappa ships it), the bytecode
// WebCode ships now (compiled at synth by lib/private/bytecode.ts, unchecked-hash), and the floor: the
// same import with a warm, writable bytecode cache (what a second run on a laptop sees).
//
// Usage: npx ts-node --transpile-only bench/init/bench.ts <django tree> <django-full tree> [rounds]
// (bench/init/run.sh builds the trees and puts the pyenv interpreters on PATH). Prints JSON.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CACHE_ENV, findCompiler, stageWithBytecode } from '../../lib/private/bytecode';
import { ALWAYS_EXCLUDED, BYTECODE } from '../../lib/private/code-directory';

const [djangoTree, fullTree, roundsArg] = process.argv.slice(2);
const ROUNDS = Number(roundsArg ?? 11);
const LAYER = path.resolve(__dirname, '../../assets/python-shim-layer/python');
const APPS = [
  { name: 'examples/django', tree: djangoTree, settings: 'mysite.settings' },
  { name: 'examples/django-full', tree: fullTree, settings: 'guestbook.settings' },
];
// django-full's settings read the database and cache endpoints WarmWebStack sets; nothing connects at INIT.
const ENV = { DB_WRITER_HOST: '127.0.0.1', DB_NAME: 'app', DB_USER: 'app', DB_PASSWORD: 'x', CACHE_URL: 'redis://127.0.0.1:6379/0' };
// What the shim does during INIT for a WSGI Django app, timed inside the process (interpreter start-up
// is the same in every variant). The layer is on sys.path after the code, as /opt/python is on Lambda.
const TIMED = `
import os, sys, time
t0 = time.perf_counter()
sys.path[:0] = [sys.argv[1]]
sys.path.append(sys.argv[2])
os.environ["DJANGO_SETTINGS_MODULE"] = sys.argv[3]
from django.core.wsgi import get_wsgi_application
get_wsgi_application()
print(time.perf_counter() - t0)
`;

// The same import, counting the modules Python compiles from source (0 when every pyc is accepted).
const COUNTED = `
import importlib.machinery, os, sys
compiled = []
original = importlib.machinery.SourceFileLoader.source_to_code
def counting(self, data, path, **kw):
    compiled.append(path)
    return original(self, data, path, **kw)
importlib.machinery.SourceFileLoader.source_to_code = counting
sys.path[:0] = [sys.argv[1]]
sys.path.append(sys.argv[2])
os.environ["DJANGO_SETTINGS_MODULE"] = sys.argv[3]
from django.core.wsgi import get_wsgi_application
get_wsgi_application()
print(len(compiled))
`;

function copyTree(from: string, prefix: string): string {
  const to = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.cpSync(from, to, { recursive: true, filter: (src) => path.basename(src) !== '__pycache__' });
  return to;
}

function timeImport(python: string, tree: string, settings: string, writable: boolean): number {
  // -B: Python may not write bytecode, as in Lambda's read-only code directory (root ignores modes).
  const args = [...(writable ? [] : ['-B']), '-c', TIMED, tree, LAYER, settings];
  // PYTHONDONTWRITEBYTECODE from the caller's environment would keep the floor's cache cold.
  const { PYTHONDONTWRITEBYTECODE: _, ...env } = process.env;
  const run = spawnSync(python, args, { encoding: 'utf-8', env: { ...env, ...ENV } });
  if (run.status !== 0) throw new Error(`${python} ${tree}: ${run.stderr}`);
  return Number(run.stdout.trim()) * 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x: number, digits = 1) => Number(x.toFixed(digits));

const results: unknown[] = [];
for (const minor of [12, 13, 14]) {
  const python = `python3.${minor}`;
  const compiler = findCompiler(minor);
  if (!compiler || !compiler.description.startsWith(python)) {
    console.error(`bench:init: no native ${python} here; skipped (Pyodide compiles for it, but runs as WebAssembly)`);
    continue;
  }
  for (const app of APPS) {
    process.env[CACHE_ENV] = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-bench-cache-'));
    const exclude = [...ALWAYS_EXCLUDED, ...BYTECODE];
    let t = Date.now();
    const shipped = stageWithBytecode(app.tree, exclude, compiler);
    const compileMs = Date.now() - t;
    t = Date.now();
    const cached = stageWithBytecode(app.tree, exclude, compiler);
    const cachedMs = Date.now() - t;
    if (cached.fresh) throw new Error('the second stage of an unchanged tree compiled again');
    const none = copyTree(app.tree, 'warm-web-bench-none-');
    const floor = copyTree(app.tree, 'warm-web-bench-floor-');
    timeImport(python, floor, app.settings, true); // warms the floor's cache: Python writes its pycs
    if (!fs.existsSync(path.join(floor, 'django', '__pycache__'))) throw new Error(`the floor's cache in ${floor} stayed cold`);
    const variants = {
      none: { tree: none, writable: false },
      shipped: { tree: shipped.directory, writable: false },
      floor: { tree: floor, writable: true },
    };
    const times = { none: [] as number[], shipped: [] as number[], floor: [] as number[] };
    const order = Object.keys(variants) as (keyof typeof variants)[];
    for (let i = 0; i < ROUNDS; i++) {
      // Rotated each round: none (a second of compiling) must not always run just before the same variant.
      for (const name of [...order.slice(i % 3), ...order.slice(0, i % 3)]) {
        times[name].push(timeImport(python, variants[name].tree, app.settings, variants[name].writable));
      }
    }
    const m = { none: median(times.none), shipped: median(times.shipped), floor: median(times.floor) };
    const low = { none: Math.min(...times.none), shipped: Math.min(...times.shipped), floor: Math.min(...times.floor) };
    results.push({
      python: compiler.description,
      app: app.name,
      modules: shipped.compiled,
      rounds: ROUNDS,
      medianMs: { none: round(m.none), shipped: round(m.shipped), floor: round(m.floor) },
      shippedOverFloor: round(m.shipped / m.floor, 3),
      noneOverShipped: round(m.none / m.shipped, 2),
      // The fastest run of each: noise on a shared machine only ever adds time.
      minMs: { none: round(low.none), shipped: round(low.shipped), floor: round(low.floor) },
      minShippedOverFloor: round(low.shipped / low.floor, 3),
      compileAtSynthMs: compileMs,
      cachedSynthMs: cachedMs,
    });
    for (const dir of [none, floor, process.env[CACHE_ENV]!]) fs.rmSync(dir, { recursive: true, force: true });
  }
}

// What users without a native python3.X get: Pyodide's compile of the same tree, for each minor.
const pyodide: unknown[] = [];
for (const minor of [12, 13, 14]) {
  const savedPath = process.env.PATH;
  process.env.PATH = path.dirname(process.execPath); // no python3.X: findCompiler falls back to Pyodide
  const compiler = findCompiler(minor);
  process.env.PATH = savedPath;
  if (!compiler) continue;
  process.env[CACHE_ENV] = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-bench-cache-'));
  const t = Date.now();
  const staged = stageWithBytecode(djangoTree, [...ALWAYS_EXCLUDED, ...BYTECODE], compiler);
  const compileAtSynthMs = Date.now() - t;
  // Pyodide's pycs must be the native CPython's: where this machine has that minor, import with them.
  const native = findCompiler(minor);
  let acceptedBy: { python: string; sourcesCompiled: number } | undefined;
  if (native?.description.startsWith(`python3.${minor}`)) {
    const run = spawnSync(`python3.${minor}`, ['-B', '-c', COUNTED, staged.directory, LAYER, 'mysite.settings'], { encoding: 'utf-8' });
    if (run.status !== 0) throw new Error(run.stderr);
    acceptedBy = { python: native.description, sourcesCompiled: Number(run.stdout.trim()) };
  }
  pyodide.push({ compiler: compiler.description, app: 'examples/django', modules: staged.compiled, compileAtSynthMs, acceptedBy });
  fs.rmSync(process.env[CACHE_ENV]!, { recursive: true, force: true });
}

console.log(JSON.stringify({ date: new Date().toISOString(), host: { cores: os.cpus().length, node: process.version }, results, pyodide }, null, 2));
