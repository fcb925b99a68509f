#!/usr/bin/env node
// Writes the tablet jsii-pacmak renders the Python bindings' samples from: ours (.jsii.tabl.json, every
// sample compiled by `jsii-rosetta extract --strict`) plus aws-cdk-lib's translations of the samples
// our types inherit (a struct's Python docstring repeats the fields of its parents, e.g. StackProps.env).
// pacmak loads no dependency's tablet by itself, and would otherwise fail or fall back to guessing.
// Usage: node scripts/python-tablet.js OUT
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { LanguageTablet } = require('jsii-rosetta');

const ROOT = path.join(__dirname, '..');
const CDK = path.join(ROOT, 'node_modules', 'aws-cdk-lib');

/** aws-cdk-lib's assembly: a redirect to a gzipped file in current releases. */
function cdkAssembly() {
  const spec = JSON.parse(fs.readFileSync(path.join(CDK, '.jsii'), 'utf-8'));
  if (spec.schema === 'jsii/file-redirect') {
    return JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(CDK, spec.filename))).toString('utf-8'));
  }
  return spec;
}

/** Every aws-cdk-lib type one of ours extends or implements, and theirs in turn. */
function inherited(ours, cdk) {
  const parents = (type) => [...(type.interfaces ?? []), ...(type.base ? [type.base] : [])];
  const found = new Set();
  const queue = Object.values(ours.types).flatMap(parents).filter((fqn) => fqn.startsWith('aws-cdk-lib.'));
  while (queue.length) {
    const fqn = queue.pop();
    if (found.has(fqn)) continue;
    found.add(fqn);
    const type = cdk.types[fqn];
    if (type) queue.push(...parents(type).filter((p) => p.startsWith('aws-cdk-lib.')));
  }
  return found;
}

async function main() {
  const out = process.argv[2];
  if (!out) {
    console.error('usage: python-tablet.js OUT');
    process.exit(2);
  }
  const ours = JSON.parse(fs.readFileSync(path.join(ROOT, '.jsii'), 'utf-8'));
  const fqns = inherited(ours, cdkAssembly());
  const tablet = new LanguageTablet();
  await tablet.load(path.join(ROOT, '.jsii.tabl.json'));
  const cdkTablet = new LanguageTablet();
  await cdkTablet.load(path.join(CDK, '.jsii.tabl.json.gz'));
  const borrowed = cdkTablet.snippetKeys.map((key) => cdkTablet.tryGetSnippet(key))
    .filter((snippet) => fqns.has(snippet.snippet.location?.api?.fqn));
  tablet.addSnippets(...borrowed);
  await tablet.save(out);
  console.log(`${out}: ${tablet.count - borrowed.length} samples of ours, ${borrowed.length} of aws-cdk-lib (${[...fqns].sort().join(', ')})`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
