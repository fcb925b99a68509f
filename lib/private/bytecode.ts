import { spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FileSystem, IgnoreMode } from 'aws-cdk-lib';

/**
 * Compiles a Python app's tree to bytecode at synth, for the function's Python minor, so no cold start
 * compiles it: Lambda's code directory is read-only, so Python cannot cache bytecode there, and a fresh
 * environment compiles every module it imports (over a second for Django).
 *
 * The pycs are unchecked-hash: the code never changes after deploy, so at import Python neither checks
 * the source's mtime nor reads and hashes it. Sources stay next to them, for tracebacks.
 */

/** Where compiled trees are kept between synths, one folder per (tree content, compiler). */
export const CACHE_ENV = 'WARM_WEB_BYTECODE_CACHE';
/** Bumped when the staged layout or the compile script changes, so old cache entries are not reused. */
const FORMAT = 1;
/** Cache entries unused for this long are removed when a new one is made. */
const CACHE_DAYS = 7;
/**
 * The path compiled into the pycs: where zip code runs. It keeps the bytes independent of where the tree
 * was compiled (the asset hash stays the same); elsewhere (slim code) Python puts the real path in at import.
 */
const DEST_DIR = '/var/task';

/** One Pyodide (CPython as WebAssembly) per Lambda minor: the package name, as the shim layer's build uses. */
export const PYODIDE = (minor: number) => `pyodide-py3${minor}`;
/** The Pyodide release of each minor that this library is tested with (its dev dependencies). */
export const PYODIDE_RELEASES: Record<number, string> = { 12: '0.27.7', 13: '0.29.3', 14: '314.0.7' };

/**
 * `compile_tree(root, ddir)` compiles every `.py` under root next to itself (`__pycache__/<name>.<tag>.pyc`)
 * and returns a JSON summary. A file that does not compile is skipped (it fails the same way on import, if it is ever
 * imported: test fixtures and Python 2 leftovers in dependencies often are not).
 */
const COMPILE_SCRIPT = `
import importlib.util, json, os, py_compile, sys

def compile_tree(root, ddir):
    compiled, pyc_bytes, failed = 0, 0, []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            source = os.path.join(here, name)
            rel = os.path.relpath(source, root)
            pyc = importlib.util.cache_from_source(source)
            try:
                py_compile.compile(source, cfile=pyc, dfile=os.path.join(ddir, rel), doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            except (py_compile.PyCompileError, OSError):
                failed.append(rel)
                continue
            compiled += 1
            pyc_bytes += os.path.getsize(pyc)
    return json.dumps({"tag": sys.implementation.cache_tag, "compiled": compiled, "pycBytes": pyc_bytes, "failed": failed})
`;

/**
 * Runs COMPILE_SCRIPT in the Pyodide whose entry module is argv[1], on the host folder argv[2], mounted
 * so the pycs land on the host's disk. One process per compile: a Pyodide keeps global state.
 */
const PYODIDE_WORKER = `
const [entry, root, ddir, script] = process.argv.slice(1);
require(entry).loadPyodide().then((py) => {
  py.FS.mkdirTree('/tree');
  py.FS.mount(py.FS.filesystems.NODEFS, { root }, '/tree');
  py.runPython(script);
  process.stdout.write(py.globals.get('compile_tree')('/tree', ddir));
}).catch((err) => { console.error(err.stack || String(err)); process.exit(1); });
`;

/** A Python that can write bytecode for one minor. */
export interface PythonCompiler {
  /** What it is, for messages and the cache key: `python3.13 (3.13.0 ...)` or `pyodide-py313 0.29.3`. */
  readonly description: string;
  /** The bytecode's cache tag, `cpython-313`. */
  readonly tag: string;
  /** Compiles the tree in place. */
  compile(root: string): CompileSummary;
}

/** What a compile did. */
export interface CompileSummary {
  /** Modules compiled. */
  readonly compiled: number;
  /** Their bytecode, in bytes. */
  readonly pycBytes: number;
  /** Paths (relative to the tree) that did not compile. */
  readonly failed: string[];
}

/** A tree staged with its bytecode. */
export interface StagedTree extends CompileSummary {
  /** The staged copy: the tree (after exclusions) and its `__pycache__` folders. */
  readonly directory: string;
  /** The compiler used. */
  readonly compiler: string;
  /** The staged copy's fingerprint (content of every file, pycs included): the asset hash to use. */
  readonly hash: string;
  /** Whether this synth compiled it (false: reused from the cache). */
  readonly fresh: boolean;
}

const compilers = new Map<number, PythonCompiler | undefined>();

/**
 * Finds a compiler for Python 3.<minor>: a native `python3.<minor>` on PATH first, then Pyodide. Once per
 * minor and process: the answer cannot change during a synth, and probing starts a process.
 */
export function findCompiler(minor: number): PythonCompiler | undefined {
  if (!compilers.has(minor)) compilers.set(minor, nativeCompiler(minor) ?? pyodideCompiler(minor));
  return compilers.get(minor);
}

function nativeCompiler(minor: number): PythonCompiler | undefined {
  const tag = `cpython-3${minor}`;
  const exe = `python3.${minor}`;
  // A pyenv shim of a version not selected is on PATH but fails: asking it what it is tells both apart.
  // -I: the user's PYTHON* variables and site-packages have no say in what is compiled.
  const probe = spawnSync(exe, ['-I', '-c', 'import sys; print(sys.implementation.cache_tag); print(sys.version)'], { encoding: 'utf-8' });
  const [probedTag, version] = (probe.stdout ?? '').trim().split('\n');
  if (probe.status !== 0 || probedTag !== tag) return undefined;
  return {
    description: `${exe} (${version})`,
    tag,
    compile: (root) => parseSummary(exe, spawnSync(exe, ['-I', '-c', `${COMPILE_SCRIPT}\nprint(compile_tree(sys.argv[1], sys.argv[2]))`, root, DEST_DIR], { encoding: 'utf-8', maxBuffer: 64 * 2 ** 20 })),
  };
}

function pyodideCompiler(minor: number): PythonCompiler | undefined {
  const pkg = PYODIDE(minor);
  let manifest: string;
  try {
    // The user's project first (where they would install it), then this library's own dependencies.
    manifest = require.resolve(`${pkg}/package.json`, { paths: [process.cwd(), __dirname] });
  } catch {
    return undefined;
  }
  const version = JSON.parse(fs.readFileSync(manifest, 'utf-8')).version;
  const entry = path.join(path.dirname(manifest), 'pyodide.js');
  return {
    description: `${pkg} ${version}`,
    tag: `cpython-3${minor}`,
    compile: (root) => parseSummary(pkg, spawnSync(process.execPath,
      ['-e', PYODIDE_WORKER, entry, root, DEST_DIR, COMPILE_SCRIPT], { encoding: 'utf-8', maxBuffer: 64 * 2 ** 20 })),
  };
}

function parseSummary(who: string, run: ReturnType<typeof spawnSync>): CompileSummary & { tag: string } {
  const out = String(run.stdout ?? '').trim().split('\n').pop() ?? '';
  if (run.status !== 0 || !out.startsWith('{')) {
    const said = run.error ? run.error.message : `${String(run.stderr ?? '')}${String(run.stdout ?? '')}`;
    throw new Error(`${who} failed to compile Python bytecode (exit ${run.status ?? run.signal}): ${said.trim().slice(-2000)}`);
  }
  return JSON.parse(out);
}

/**
 * Copies `directory` (after `exclude`) into the cache and compiles it there, or reuses the cached copy
 * of the same content compiled by the same compiler. Never writes into `directory`.
 */
export function stageWithBytecode(directory: string, exclude: string[], compiler: PythonCompiler): StagedTree {
  const root = path.resolve(directory);
  const options = { exclude, ignoreMode: IgnoreMode.GLOB };
  const content = FileSystem.fingerprint(root, options);
  const key = crypto.createHash('sha256').update(JSON.stringify([FORMAT, content, compiler.tag, compiler.description])).digest('hex').slice(0, 32);
  const cache = path.resolve(process.env[CACHE_ENV] || path.join(os.tmpdir(), 'cdk-warm-web-bytecode'));
  const entry = path.join(cache, key);
  const summaryFile = path.join(entry, 'summary.json');
  if (fs.existsSync(summaryFile)) {
    const cached: Omit<StagedTree, 'directory' | 'fresh'> = JSON.parse(fs.readFileSync(summaryFile, 'utf-8'));
    // A temp-folder cleaner may have removed files of an old entry: reuse it only if it is whole.
    // This hash is the asset hash too, so the asset does not hash the tree again.
    if (FileSystem.fingerprint(path.join(entry, 'tree')) === cached.hash) {
      const now = new Date();
      fs.utimesSync(entry, now, now);
      return { ...cached, directory: path.join(entry, 'tree'), fresh: false };
    }
    fs.rmSync(entry, { recursive: true, force: true });
  }

  fs.mkdirSync(cache, { recursive: true });
  pruneCache(cache);
  // Built aside and renamed into place, so a crash or a concurrent synth never sees half a tree.
  const building = fs.mkdtempSync(`${entry}.tmp-`);
  try {
    FileSystem.copyDirectory(root, path.join(building, 'tree'), options);
    const { tag, ...summary } = compiler.compile(path.join(building, 'tree')) as CompileSummary & { tag: string };
    if (tag !== compiler.tag) {
      throw new Error(`${compiler.description} wrote bytecode for ${tag}, not ${compiler.tag}`);
    }
    const staged = { ...summary, compiler: compiler.description, hash: FileSystem.fingerprint(path.join(building, 'tree')) };
    fs.writeFileSync(path.join(building, 'summary.json'), JSON.stringify(staged));
    try {
      fs.renameSync(building, entry);
    } catch (err) {
      // Another synth finished the same entry first: its tree is the same, so use it.
      if (!fs.existsSync(summaryFile)) throw err;
      fs.rmSync(building, { recursive: true, force: true });
    }
    return { ...staged, directory: path.join(entry, 'tree'), fresh: true };
  } catch (err) {
    fs.rmSync(building, { recursive: true, force: true });
    throw err;
  }
}

/** Removes entries (and leftovers of crashed builds) not used for CACHE_DAYS: each is a copy of a tree. */
function pruneCache(cache: string) {
  const cutoff = Date.now() - CACHE_DAYS * 24 * 3600 * 1000;
  for (const name of fs.readdirSync(cache)) {
    const full = path.join(cache, name);
    // Another synth may be pruning too: an entry gone meanwhile is no error.
    const stat = fs.statSync(full, { throwIfNoEntry: false });
    if (stat && stat.mtimeMs < cutoff) fs.rmSync(full, { recursive: true, force: true });
  }
}
