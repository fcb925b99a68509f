import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..');
const script = path.join(ROOT, 'scripts', 'readme-python.js');

function check(readme: string) {
  return spawnSync(process.execPath, [script, '--check', readme], { encoding: 'utf-8' });
}

test('the README\'s Python snippets are what jsii-rosetta makes of its TypeScript', () => {
  const run = check(path.join(ROOT, 'README.md'));
  expect(run.stderr).toBe('');
  expect(run.stdout).toMatch(/2 Python snippet\(s\) match jsii-rosetta/);
  expect(run.status).toBe(0);
  expect(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf-8')).toMatch(/WarmWebStack\(app, "Prod",/);
}, 60_000);

test('a Python snippet that drifted from its TypeScript is reported', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf-8').replace('RouterDatabase.aurora(readers=1)', 'RouterDatabase.aurora(readers=2)');
  const copy = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'readme-')), 'README.md');
  fs.writeFileSync(copy, readme);
  const run = check(copy);
  expect(run.status).toBe(1);
  expect(run.stderr).toMatch(/Python out of date for: block 1 \(new WarmWebStack\(app, 'Prod', \{\)/);
}, 60_000);
