// Loads a handler file as Lambda's Node runtime does (that is INIT), optionally waits while the parent
// freezes it (SIGSTOP/SIGCONT) as Lambda freezes an environment between INIT and its first invoke, then
// invokes once. Prints {"initMs", "firstInvokeMs"}. Usage: node node-init-runner.mjs HANDLER_FILE [freeze]
import { createRequire } from 'module';

const [file, freeze] = process.argv.slice(2);
const t0 = performance.now();
const mod = file.endsWith('.mjs') ? await import(file) : createRequire(import.meta.url)(file);
const t1 = performance.now();
if (freeze === 'freeze') {
  process.stdout.write('INIT-DONE\n');
  const keep = setInterval(() => undefined, 1000);
  await new Promise((resolve) => process.once('SIGUSR2', resolve));
  clearInterval(keep);
}
const t2 = performance.now();
await mod.handler({}, { awsRequestId: 'b', functionName: 'b', getRemainingTimeInMillis: () => 30_000 });
const t3 = performance.now();
process.stdout.write(`${JSON.stringify({ initMs: +(t1 - t0).toFixed(1), firstInvokeMs: +(t3 - t2).toFixed(1) })}\n`);
