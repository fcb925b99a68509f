// The Python package as pip installs it: the wheel `npx projen package:python` builds (scripts/test-all.sh
// runs it before the tests). Its README (the PyPI page) and its docstrings must read as Python.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const DIST = path.join(ROOT, 'dist', 'python');

function wheel(): string {
  const file = fs.existsSync(DIST) ? fs.readdirSync(DIST).find((f) => f.endsWith('.whl')) : undefined;
  if (!file) throw new Error('no wheel in dist/python: run npx projen package:python');
  const full = path.join(DIST, file);
  if (fs.statSync(full).mtimeMs < fs.statSync(path.join(ROOT, '.jsii')).mtimeMs) {
    throw new Error(`${file} is older than .jsii: run npx projen package:python`);
  }
  return full;
}

/** One member of the wheel (a zip), read with the machine's Python. */
function member(whl: string, suffix: string): string {
  const script = 'import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\n'
    + 'name = next(n for n in z.namelist() if n.endswith(sys.argv[2]))\nsys.stdout.write(z.read(name).decode())';
  return execFileSync('python3', ['-c', script, whl, suffix], { encoding: 'utf-8', maxBuffer: 64 * 1024 * 1024 });
}

function pythonBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```python\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
}

test('the wheel\'s README shows every sample in Python, none in TypeScript', () => {
  const metadata = member(wheel(), '.dist-info/METADATA');
  expect(metadata).toMatch(/^Name: cdk-warm-web$/m);
  expect(metadata).not.toMatch(/```ts\b|```typescript\b/);
  expect(metadata).not.toMatch(/non-compiling source/);
  const blocks = pythonBlocks(metadata);
  expect(blocks.length).toBeGreaterThanOrEqual(8);
  expect(blocks.filter((b) => /\bnew \w+\(|\bconst \w+ =|=>/.test(b))).toEqual([]);
  expect(metadata).toMatch(/WarmWebStack\(app, "Prod",/);
  expect(metadata).toMatch(/pip install cdk-warm-web/);
});

test('the wheel\'s docstring examples are Python', () => {
  const init = member(wheel(), 'cdk_warm_web/__init__.py');
  expect(init).toMatch(/Example::/);
  expect(init).not.toMatch(/non-compiling source/);
  expect(init).not.toMatch(/new (WarmWebStack|WarmWebFunction)\(/);
  expect(init).toMatch(/WarmWebStack\(app, "Prod",/);
  expect(init).toMatch(/WarmCalendar\.weekly\(/);
});
