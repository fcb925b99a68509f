#!/usr/bin/env node
// Compiles the Python shim in the layer asset to bytecode for every Python runtime the layer supports,
// so Lambda's INIT imports it without compiling (a layer is read-only: Python cannot cache bytecode
// there). Each CPython minor is a Pyodide build of that minor (the same compiler and bytecode format,
// run as WebAssembly), so no native 3.12, 3.13 or 3.14 interpreter is needed here.
// Unchecked-hash pycs: the layer never changes after build, so Python reads neither the source's mtime
// nor its text; the header still carries the source hash, and test_shim_bytecode.py checks it.
//
// Usage: node scripts/compile-python-shim.js assets/python-shim-layer/python/warm_web
const { execFile } = require('child_process');
const { promisify } = require('util');
const fs = require('fs');
const path = require('path');

// One Pyodide per minor the layer lists as compatible (lib/shim-layer.ts).
const PYODIDES = { 'cpython-312': 'pyodide-py312', 'cpython-313': 'pyodide-py313', 'cpython-314': 'pyodide-py314' };
// Where the layer puts the package on Lambda: the path tracebacks show.
const LAYER_PATH = '/opt/python/warm_web';

const COMPILE = `
import compileall, py_compile, sys
ok = compileall.compile_dir(${JSON.stringify(LAYER_PATH)}, quiet=1, legacy=False,
                            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
if not ok:
    raise SystemExit("compileall failed")
sys.implementation.cache_tag
`;

async function compileWith(pkg, sourceDir, expectedTag) {
  const { loadPyodide } = require(pkg);
  const py = await loadPyodide();
  py.FS.mkdirTree(LAYER_PATH);
  const sources = fs.readdirSync(sourceDir).filter((f) => f.endsWith('.py'));
  for (const file of sources) {
    py.FS.writeFile(`${LAYER_PATH}/${file}`, fs.readFileSync(path.join(sourceDir, file)));
  }
  const tag = py.runPython(COMPILE);
  if (tag !== expectedTag) throw new Error(`${pkg} is ${tag}, not ${expectedTag}`);
  const out = path.join(sourceDir, '__pycache__');
  fs.mkdirSync(out, { recursive: true });
  for (const file of sources) {
    const pyc = `${path.basename(file, '.py')}.${tag}.pyc`;
    fs.writeFileSync(path.join(out, pyc), py.FS.readFile(`${LAYER_PATH}/__pycache__/${pyc}`));
  }
  return sources.length;
}

async function main() {
  const [sourceDir, tag] = process.argv.slice(2);
  if (!sourceDir || !fs.existsSync(path.join(sourceDir, '__init__.py'))) {
    throw new Error(`usage: compile-python-shim.js <dir of the warm_web package>; got ${sourceDir}`);
  }
  if (tag) {
    // One minor per process: Pyodide builds keep global state and cannot share one.
    const count = await compileWith(PYODIDES[tag], sourceDir, tag);
    console.log(`${tag}: ${count} modules`);
    return;
  }
  const run = promisify(execFile);
  const outputs = await Promise.all(Object.keys(PYODIDES).map((each) => run(process.execPath, [__filename, sourceDir, each])));
  for (const { stdout } of outputs) process.stdout.write(stdout);
}

main().catch((err) => {
  console.error(`compile-python-shim: ${err.message}`);
  process.exit(1);
});
