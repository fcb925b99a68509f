#!/usr/bin/env node
// Writes the Python translation (jsii-rosetta) of each README TypeScript block that is followed by the
// marker below; with --check, only reports blocks whose Python is out of date (exit 1).
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const MARKER = '<!-- python: generated from the TypeScript above by jsii-rosetta (node scripts/readme-python.js) -->';
const BLOCK = new RegExp('```ts\\n([\\s\\S]*?)```\\n\\n' + MARKER.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '\\n```python\\n([\\s\\S]*?)```', 'g');

function toPython(typescript) {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rosetta-')), 'snippet.ts');
  fs.writeFileSync(file, typescript);
  const rosetta = path.join(__dirname, '..', 'node_modules', '.bin', 'jsii-rosetta');
  return execFileSync(rosetta, ['snippet', file, '--language', 'python'], { encoding: 'utf-8', stdio: ['ignore', 'pipe', 'pipe'] }).trimEnd() + '\n';
}

const readmeFile = process.argv.find((a) => a.endsWith('.md')) ?? path.join(__dirname, '..', 'README.md');
const check = process.argv.includes('--check');
const readme = fs.readFileSync(readmeFile, 'utf-8');
let blocks = 0;
const stale = [];
const updated = readme.replace(BLOCK, (whole, typescript, python) => {
  blocks++;
  const fresh = toPython(typescript);
  if (fresh !== python) {
    const construct = typescript.split('\n').find((l) => /\bnew (?!App\()\w+/.test(l));
    stale.push(`block ${blocks} (${construct ? construct.trim() : 'no construct'})`);
  }
  return whole.slice(0, whole.length - python.length - 3) + fresh + '```';
});
if (blocks === 0) {
  console.error(`${readmeFile}: no TypeScript block followed by the rosetta marker`);
  process.exit(1);
}
if (check) {
  if (stale.length) {
    console.error(`${readmeFile}: Python out of date for: ${stale.join('; ')} (run node scripts/readme-python.js)`);
    process.exit(1);
  }
  console.log(`${readmeFile}: ${blocks} Python snippet(s) match jsii-rosetta`);
} else {
  fs.writeFileSync(readmeFile, updated);
  console.log(`${readmeFile}: ${blocks} Python snippet(s) written`);
}
