// Packs a directory with the real packer (lib/private/slim-pack.ts) and prints the result as JSON.
// Used by test/runtime/python/test_slim.py and bench/slim/run.sh:
//   npx ts-node --transpile-only test/runtime/python/slim/pack_cli.ts DIR OUT [shardBytes] [level] [exclude,...]
import { packDirectory } from '../../../../lib/private/slim-pack';

const [dir, out, shardBytes, level, exclude] = process.argv.slice(2);
if (!dir || !out) {
  process.stderr.write('usage: pack_cli.ts DIR OUT [shardBytes] [level] [exclude,...]\n');
  process.exit(2);
}
const started = process.hrtime.bigint();
const result = packDirectory(dir, out, {
  shardBytes: shardBytes ? Number(shardBytes) : undefined,
  level: level ? Number(level) : undefined,
  exclude: exclude ? exclude.split(',') : undefined,
});
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
process.stdout.write(`${JSON.stringify({ ...result, packSeconds: Math.round(seconds * 1000) / 1000 })}\n`);
