// Runs a Python script under a Pyodide build (CPython compiled to WebAssembly), so every Python minor the
// layer supports is tested, native interpreter or not. The host directories named after the script are
// mounted at their own paths, so the script sees the same files a native interpreter would.
// Usage: node pyodide_run.js <pyodide package> <script.py> <dir>...
const fs = require('fs');

async function main() {
  const [pkg, script, ...dirs] = process.argv.slice(2);
  const { loadPyodide } = require(pkg);
  const py = await loadPyodide({ stdout: (s) => console.log(s), stderr: (s) => console.error(s) });
  for (const dir of dirs) {
    py.FS.mkdirTree(dir);
    py.mountNodeFS(dir, dir);
  }
  py.pyimport('sys').argv = py.toPy([script, ...dirs]);
  py.runPython(fs.readFileSync(script, 'utf-8'), { filename: script });
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
