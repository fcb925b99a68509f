// The README and the docstring examples are what users copy. `npx projen post-compile` compiles every
// sample with jsii-rosetta --strict (fixtures in rosetta/) into .jsii.tabl.json, and fails the build on
// one that does not compile; these tests check that the tablet is of this README and holds a compiled
// Python rendering of each sample, which is what the Python README and docstrings show.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.join(__dirname, '..');
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf-8');

interface TabletSnippet {
  didCompile?: boolean;
  location: { api: { api: string; fqn?: string } };
  translations: Record<string, { source: string }>;
}

interface Tablet {
  snippets: Record<string, TabletSnippet>;
}

function built<T>(file: string): T {
  const full = path.join(ROOT, file);
  if (!fs.existsSync(full)) throw new Error(`${file} is missing: run npx projen compile && npx projen post-compile`);
  return JSON.parse(fs.readFileSync(full, 'utf-8'));
}

/** The TypeScript blocks of a Markdown text, as rosetta reads them (```ts, with or without a fixture). */
function typescriptBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```ts(?: [^\n]*)?\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
}

test('the assembly and its tablet are of this README', () => {
  const assembly = built<{ readme: { markdown: string } }>('.jsii');
  expect(assembly.readme.markdown.trim()).toBe(README.trim());
  const tablet = built<Tablet>('.jsii.tabl.json');
  expect(fs.statSync(path.join(ROOT, '.jsii.tabl.json')).mtimeMs).toBeGreaterThanOrEqual(fs.statSync(path.join(ROOT, '.jsii')).mtimeMs);
  expect(Object.keys(tablet.snippets).length).toBeGreaterThan(0);
});

test('every README sample compiled, and its Python is Python', () => {
  const tablet = built<Tablet>('.jsii.tabl.json');
  const fromReadme = Object.values(tablet.snippets).filter((s) => s.location.api.api === 'moduleReadme');
  const blocks = typescriptBlocks(README);
  expect(blocks.length).toBeGreaterThanOrEqual(7);
  expect(fromReadme.map((s) => s.didCompile)).toEqual(blocks.map(() => true));
  for (const snippet of fromReadme) {
    const python = snippet.translations.python!.source;
    expect({ python, typescriptLeft: /\bnew \w+\(|\bconst \w+ =|=>|;\s*$/m.test(python) }).toEqual({ python, typescriptLeft: false });
  }
  const python = fromReadme.map((s) => s.translations.python!.source).join('\n');
  expect(python).toMatch(/WarmWebStack\(app, "Prod",/);
  expect(python).toMatch(/code=WebCode\.from_directory\("site"\)/);
});

test('every docstring example compiled', () => {
  const tablet = built<Tablet>('.jsii.tabl.json');
  const fromDocs = Object.values(tablet.snippets).filter((s) => s.location.api.api !== 'moduleReadme');
  expect(fromDocs.length).toBeGreaterThanOrEqual(2);
  expect(fromDocs.filter((s) => !s.didCompile).map((s) => s.location.api.fqn)).toEqual([]);
});

test('the strict extract refuses a sample that does not compile', () => {
  // The gate itself, on a copy of the assembly whose README gained a sample with an undefined name.
  const dir = fs.mkdtempSync(path.join(ROOT, '.rosetta-check-'));
  try {
    const assembly = built<{ readme: { markdown: string } }>('.jsii');
    assembly.readme.markdown += "\n```ts\nnew WarmWebFunction(this, 'Web', { app: WebApp.wsgi('a:b'), code });\n```\n";
    fs.writeFileSync(path.join(dir, '.jsii'), JSON.stringify(assembly));
    fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
    for (const link of ['rosetta', 'lib', 'node_modules']) fs.symlinkSync(path.join(ROOT, link), path.join(dir, link));
    const run = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'jsii-rosetta'), ['extract', '--strict', path.join(dir, '.jsii')], { cwd: dir, encoding: 'utf-8' });
    expect(run.status).not.toBe(0);
    const errors = `${run.stdout}${run.stderr}`.split('\n').filter((l) => / - error TS\d+/.test(l));
    expect(errors).toEqual([expect.stringMatching(/README-L\d+\.ts:\d+:\d+ - error TS18004: No value exists in scope for the shorthand property 'code'/)]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
