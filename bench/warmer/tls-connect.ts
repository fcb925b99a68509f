// npm run bench:warmer-tls — what opening its connections costs the warmer inside a round. On Lambda the
// Invoke API is HTTPS: a ping on a new connection waits for a TLS handshake on the warmer's one vCPU, and
// every ping of a round holds until the last one is sent. N concurrent POSTs to a loopback HTTPS server
// (its own process; a self-signed certificate made with openssl), sent on new connections (the warmer
// before it opened them with DryRun invokes), on new connections with TLS session resumption, and on
// connections opened beforehand (the warmer now). Reports the send spread (first to last request fully
// written) and this process's CPU. Writes bench/results/warmer-tls.json.
import { execFileSync, fork } from 'child_process';
import * as fs from 'fs';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';
import { median, writeResults } from './harness';

const SIZES = (process.env.BENCH_SIZES ?? '50,200,500').split(',').map(Number);
const REPEATS = 5;

if (process.argv[2] === 'server') {
  const dir = process.argv[3];
  const server = https.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) }, (req, res) => {
    req.resume();
    req.on('end', () => res.end('{}'));
  });
  server.listen(0, '127.0.0.1', () => process.send!((server.address() as { port: number }).port));
} else {
  void main();
}

type Way = 'new connections' | 'new connections, sessions resumed' | 'connections opened before';

/** N concurrent POSTs; when each was fully written, and this process's CPU over the batch. */
async function batch(port: number, agent: https.Agent, ca: Buffer, n: number) {
  const cpu = process.cpuUsage();
  const written: number[] = [];
  await Promise.all(Array.from({ length: n }, () => new Promise<void>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent, ca }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('finish', () => written.push(performance.now()));
    req.on('error', reject);
    req.end('{"warmWeb":{}}');
  })));
  const used = process.cpuUsage(cpu);
  return { spreadMs: Math.max(...written) - Math.min(...written), cpuMs: (used.user + used.system) / 1000 };
}

async function round(way: Way, port: number, ca: Buffer, n: number) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1000, maxFreeSockets: 1000, ca, maxCachedSessions: way === 'new connections' ? 0 : 1000 });
  if (way !== 'new connections') await batch(port, agent, ca, n); // opens N connections (and caches their sessions)
  if (way === 'new connections, sessions resumed') {
    const sockets = Object.values(agent.freeSockets).flat();
    await Promise.all(sockets.map((socket) => new Promise((closed) => socket!.once('close', closed).destroy())));
  }
  const result = await batch(port, agent, ca, n);
  agent.destroy();
  return result;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const ca = fs.readFileSync(path.join(dir, 'cert.pem'));
  const server = fork(__filename, ['server', dir], { execArgv: process.execArgv });
  const port = await new Promise<number>((resolve) => server.once('message', (p) => resolve(p as number)));
  const ways: Way[] = ['new connections', 'new connections, sessions resumed', 'connections opened before'];
  const results = [];
  try {
    for (const n of SIZES) {
      const row: Record<string, unknown> = { n };
      for (const way of ways) {
        const runs = [];
        for (let i = 0; i < REPEATS; i++) runs.push(await round(way, port, ca, n));
        row[way] = { spreadMs: +median(runs.map((r) => r.spreadMs)).toFixed(1), cpuMs: Math.round(median(runs.map((r) => r.cpuMs))) };
      }
      const opened = (row['connections opened before'] as { spreadMs: number }).spreadMs;
      row.spreadToOpened = Object.fromEntries(ways.map((way) => [way, +((row[way] as { spreadMs: number }).spreadMs / opened).toFixed(1)]));
      results.push(row);
      console.error(JSON.stringify(row));
    }
  } finally {
    server.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  writeResults('warmer-tls', 'npm run bench:warmer-tls', {
    note: `N concurrent POSTs to a loopback HTTPS server in its own process (ECDSA P-256 certificate), median of ${REPEATS} batches per cell. spreadMs = first to last request fully written (a ping of a round holds at least that long for the last one); cpuMs = this process's CPU over the batch, handshakes and responses included. spreadToOpened = spread over that of connections opened before.`,
    results,
  });
  console.log(JSON.stringify(results, null, 2));
}
