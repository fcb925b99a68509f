// npm run bench:slim-node-init — what a Node function's first request waits for its slim code: the
// layer's CommonJS entry (the load starts in INIT, which does not wait for it) against an ES-module
// entry that holds INIT with top-level await, each invoked at once and after a 2 s freeze (as Lambda
// freezes a provisioned environment). moto on loopback, fresh processes, medians. Writes
// bench/results/slim-node-init.json.
import { type ChildProcess, execFileSync, spawn } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { build } from 'esbuild';
import { packDirectory } from '../../lib/private/slim-pack';

const ROOT = path.join(__dirname, '..', '..');
const RUNNER = path.join(__dirname, 'node-init-runner.mjs');
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const BUCKET = 'bench-node-init';
// The ES-module entry: the same CommonJS bundle, awaited.
const ESM_ENTRY = "import { createRequire } from 'node:module';\nconst shim = createRequire(import.meta.url)('./index.js');\n"
  + 'await shim.ready.catch(() => undefined);\nexport const handler = shim.handler;\n';

function put(url: string, body?: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'PUT' }, (res) => res.resume().on('end', () => resolve(res.statusCode ?? 0)));
    req.on('error', reject);
    req.end(body);
  });
}

function run(file: string, env: NodeJS.ProcessEnv, freeze: boolean): Promise<{ initMs: number; firstInvokeMs: number }> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [RUNNER, file, freeze ? 'freeze' : ''], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let frozen = false;
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (freeze && !frozen && out.includes('INIT-DONE\n')) {
        frozen = true;
        child.kill('SIGSTOP');
        setTimeout(() => {
          child.kill('SIGCONT');
          setTimeout(() => child.kill('SIGUSR2'), 20);
        }, 2000);
      }
    });
    child.on('exit', () => {
      const line = out.split('\n').find((l) => l.includes('"initMs"'));
      if (line) resolve(JSON.parse(line));
      else reject(new Error(`no result: ${out}`));
    });
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-node-init-'));
  const tree = path.join(work, 'tree');
  for (let i = 0; i < 6000; i++) {
    const f = path.join(tree, 'node_modules', `pkg${i % 60}`, 'lib', `f${i}.js`);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, `module.exports = function f${i}(a, b) { return a + b + ${i}; };\n`.repeat(80));
  }
  fs.writeFileSync(path.join(tree, 'blob.bin'), Buffer.concat(Array.from({ length: 160_000 }, (_, i) => createHash('sha256').update(String(i)).digest())));
  fs.writeFileSync(path.join(tree, 'app.js'), 'exports.handler = async () => ({ app: "bench" });\n');
  const packed = packDirectory(tree, path.join(work, 'code.slim'));
  const layer = path.join(work, 'layer');
  const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', logLevel: 'silent' } as const;
  await build({ ...common, entryPoints: [path.join(ROOT, 'runtime/node/index.ts')], external: ['./slim'], outfile: path.join(layer, 'index.js') });
  await build({ ...common, entryPoints: [path.join(ROOT, 'runtime/node/slim.ts')], outfile: path.join(layer, 'slim.js') });
  fs.writeFileSync(path.join(layer, 'init.mjs'), ESM_ENTRY);

  const port = 20000 + Math.floor(Math.random() * 20000);
  const moto = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    stdio: 'ignore', env: { ...process.env, MOTO_S3_DEFAULT_KEY_BUFFER_SIZE: String(200 * 1024 * 1024) },
  });
  try {
    for (let t = 0; ; t++) {
      try {
        await put(`http://127.0.0.1:${port}/${BUCKET}`);
        break;
      } catch (e) {
        if (t > 300) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const key = `slim/${packed.sha256}.slim`;
    const status = await put(`http://127.0.0.1:${port}/${BUCKET}/${key}`, fs.readFileSync(path.join(work, 'code.slim')));
    if (status !== 200) throw new Error(`PUT of the archive: ${status}`);
    const forms: Record<string, string> = { 'CommonJS (the layer\'s)': path.join(layer, 'index.js'), 'ES module, top-level await': path.join(layer, 'init.mjs') };
    const runs: Record<string, Array<{ initMs: number; firstInvokeMs: number }>> = {};
    for (let r = 0; r <= ROUNDS; r++) { // round 0 warms up and is not counted
      for (const [form, file] of Object.entries(forms)) {
        for (const freeze of [false, true]) {
          const tmp = path.join(work, `tmp-${r}-${freeze}-${path.basename(file)}`);
          fs.mkdirSync(tmp);
          execFileSync('sync');
          const env = {
            PATH: process.env.PATH,
            TMPDIR: tmp,
            WARM_WEB_APP: 'app.handler',
            WARM_WEB_APP_KIND: 'handler',
            WARM_WEB_SLIM_BUCKET: BUCKET,
            WARM_WEB_SLIM_KEY: key,
            WARM_WEB_SLIM_SHA256: packed.sha256,
            WARM_WEB_SLIM_SIZE: String(packed.size),
            WARM_WEB_SLIM_UNPACKED: String(packed.unpackedBytes),
            AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`,
            AWS_REGION: 'us-east-1',
            AWS_LAMBDA_FUNCTION_NAME: 'bench',
            AWS_ACCESS_KEY_ID: 'AKIDTEST',
            AWS_SECRET_ACCESS_KEY: 'secret',
          };
          const got = await run(file, env, freeze);
          if (r > 0) (runs[`${form}, ${freeze ? 'frozen 2 s after INIT' : 'invoked at once'}`] ??= []).push(got);
        }
      }
    }
    const results = Object.entries(runs).map(([variant, v]) => ({
      variant, initMs: median(v.map((x) => x.initMs)), firstInvokeMs: median(v.map((x) => x.firstInvokeMs)), runs: v,
    }));
    const out = {
      date: new Date().toISOString().slice(0, 10),
      files: packed.files,
      unpackedBytes: packed.unpackedBytes,
      archiveBytes: packed.size,
      rounds: ROUNDS,
      results,
    };
    fs.writeFileSync(path.join(ROOT, 'bench/results/slim-node-init.json'), `${JSON.stringify(out, null, 2)}\n`);
    for (const r of results) console.log(`${r.variant}: INIT ${r.initMs} ms, first invoke waits ${r.firstInvokeMs} ms (medians of ${ROUNDS})`);
  } finally {
    moto.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
