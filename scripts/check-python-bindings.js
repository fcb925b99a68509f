#!/usr/bin/env node
// Checks that the generated Python bindings declare every class, struct and enum of the jsii assembly.
// Usage: node scripts/check-python-bindings.js <.jsii> <__init__.py>
const fs = require('fs');

const [assemblyFile, bindingsFile] = process.argv.slice(2);
if (!assemblyFile || !bindingsFile) {
  console.error('usage: check-python-bindings.js <.jsii> <python __init__.py>');
  process.exit(2);
}
const assembly = JSON.parse(fs.readFileSync(assemblyFile, 'utf-8'));
const bindings = fs.readFileSync(bindingsFile, 'utf-8');
const types = Object.values(assembly.types ?? {});
const missing = types.filter((t) => !new RegExp(`^class ${t.name}\\b`, 'm').test(bindings)).map((t) => t.fqn);
if (types.length === 0 || missing.length > 0) {
  console.error(`python bindings lack ${missing.length ? missing.join(', ') : 'every type (the assembly has none)'}`);
  process.exit(1);
}
const classes = types.filter((t) => t.kind === 'class').map((t) => t.name).sort();
console.log(`python bindings: all ${types.length} types present, classes ${classes.join(', ')}`);
