// Node shim benchmark: INIT overhead (fresh processes) and per-request overhead (one process) of the
// built layer bundle, against the bare Express fixture and against the Lambda Web Adapter's approach.
// Usage: node bench/shim/node_bench.js [bundle]   (build the bundle first: npx projen bundle:node-shim)
// Prints one JSON object.
'use strict';

const { execFileSync } = require('child_process');
const http = require('http');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');
const BUNDLE = path.resolve(process.argv[2] || path.join(ROOT, 'assets/node-shim-layer/warm-web/index.js'));
const TASK_ROOT = path.join(ROOT, 'test/runtime/node/fixtures');
const APP_FILE = path.join(TASK_ROOT, 'express-app.js');
const INIT_RUNS = 41;
const WARMUP = 2000;
const ROUNDS = 10;
const PER_ROUND = 600;

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const round = (value, digits) => Number(value.toFixed(digits));

const ENV = {
  ...process.env,
  LAMBDA_TASK_ROOT: TASK_ROOT,
  WARM_WEB_APP: 'express-app.app',
  WARM_WEB_APP_KIND: 'listener',
  AWS_LAMBDA_FUNCTION_NAME: 'bench',
};

// Each child times only its own loading, so process start-up is left out of both variants.
const INIT_SCRIPTS = {
  shim: `const t = performance.now(); const m = require(${JSON.stringify(BUNDLE)});
    m.ready.then(() => process.stdout.write(String(performance.now() - t)));`,
  bare: `const t = performance.now(); require(${JSON.stringify(APP_FILE)});
    process.stdout.write(String(performance.now() - t));`,
};

function measureInit() {
  const samples = { shim: [], bare: [] };
  const pairs = [];
  for (let i = 0; i < INIT_RUNS; i++) {
    // Alternate, so drift (page cache, CPU frequency) hits both variants alike.
    const order = i % 2 ? ['bare', 'shim'] : ['shim', 'bare'];
    for (const variant of order) {
      const out = execFileSync(process.execPath, ['-e', INIT_SCRIPTS[variant]], { env: ENV, encoding: 'utf8' });
      samples[variant].push(Number(out));
    }
    pairs.push(samples.shim[i] - samples.bare[i]);
  }
  return { shimMs: median(samples.shim), bareMs: median(samples.bare), pairedMs: median(pairs) };
}

function httpApiEvent() {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: '/hello',
    rawQueryString: 'a=1&b=2',
    headers: {
      'accept': 'application/json',
      'accept-encoding': 'gzip, deflate, br',
      'host': 'abc123.lambda-url.eu-west-1.on.aws',
      'user-agent': 'bench/1.0',
      'x-amzn-trace-id': 'Root=1-65f0a1b2-0123456789abcdef01234567',
      'x-forwarded-for': '203.0.113.7',
      'x-forwarded-port': '443',
      'x-forwarded-proto': 'https',
    },
    requestContext: {
      accountId: 'anonymous',
      apiId: 'abc123',
      domainName: 'abc123.lambda-url.eu-west-1.on.aws',
      http: { method: 'GET', path: '/hello', protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'bench/1.0' },
      requestId: 'req-1',
      routeKey: '$default',
      stage: '$default',
      time: '01/Jan/2025:00:00:00 +0000',
      timeEpoch: 1735689600000,
    },
    isBase64Encoded: false,
  };
}

const CONTEXT = { awsRequestId: 'req-1', functionName: 'bench', getRemainingTimeInMillis: () => 30000 };

// The cheapest real req/res Express accepts: no socket, and res.end replaced so nothing is serialised.
function callDirect(app) {
  return new Promise((resolve) => {
    const req = new http.IncomingMessage(null);
    req.method = 'GET';
    req.url = '/hello?a=1&b=2';
    req.headers = { 'host': 'localhost', 'accept': 'application/json', 'user-agent': 'bench/1.0' };
    req.push(null);
    const res = new http.ServerResponse(req);
    res.end = (chunk) => {
      resolve(chunk);
      return res;
    };
    app(req, res);
  });
}

function callHttp(agent, port) {
  return new Promise((resolve, reject) => {
    const request = http.get({ agent, host: '127.0.0.1', port, path: '/hello?a=1&b=2', headers: { accept: 'application/json' } }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => resolve(Buffer.concat(chunks)));
    });
    request.on('error', reject);
  });
}

async function time(samples, call) {
  const start = process.hrtime.bigint();
  await call();
  samples.push(Number(process.hrtime.bigint() - start) / 1000);
}

async function measureRequests() {
  Object.assign(process.env, ENV);
  const shim = require(BUNDLE);
  await shim.ready;
  const { app } = require(APP_FILE);
  const server = http.createServer(app);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const event = httpApiEvent();

  // The first invoke writes the cold-start EMF line; keep it out of this script's JSON output.
  const write = process.stdout.write;
  process.stdout.write = () => true;
  const first = await shim.handler(event, CONTEXT);
  process.stdout.write = write;
  if (first.statusCode !== 200 || !first.body.includes('world')) {
    throw new Error(`unexpected shim response ${JSON.stringify(first)}`);
  }

  const variants = {
    shim: () => shim.handler(event, CONTEXT),
    direct: () => callDirect(app),
    lwa: () => callHttp(agent, port),
  };
  for (const call of Object.values(variants)) {
    for (let i = 0; i < WARMUP; i++) await call();
  }
  const samples = { shim: [], direct: [], lwa: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, call] of Object.entries(variants)) {
      for (let i = 0; i < PER_ROUND; i++) await time(samples[name], call);
    }
  }
  agent.destroy();
  server.close();
  return { shimUs: median(samples.shim), directUs: median(samples.direct), lwaUs: median(samples.lwa), perVariant: ROUNDS * PER_ROUND };
}

async function main() {
  const init = measureInit();
  const requests = await measureRequests();
  process.stdout.write(`${JSON.stringify({
    runtime: 'node',
    node: process.version,
    bundle: path.relative(ROOT, BUNDLE),
    initOverheadMs: round(init.shimMs - init.bareMs, 2),
    requestOverheadUs: round(requests.shimUs - requests.directUs, 1),
    lwaRequestUs: round(requests.lwaUs, 1),
    raw: {
      initRunsPerVariant: INIT_RUNS,
      initShimMedianMs: round(init.shimMs, 2),
      initBareMedianMs: round(init.bareMs, 2),
      initOverheadPairedMedianMs: round(init.pairedMs, 2),
      requestsPerVariant: requests.perVariant,
      shimRequestMedianUs: round(requests.shimUs, 1),
      directRequestMedianUs: round(requests.directUs, 1),
      lwaRequestMedianUs: round(requests.lwaUs, 1),
    },
    notes: {
      init: 'median in fresh processes of require(bundle) + await ready with WARM_WEB_APP set to the Express fixture, minus median of require(fixture) bare; the paired median (shim minus bare run next to it) is a noise check',
      shim: 'handler(HTTP API v2 GET /hello event) to formatted response',
      direct: 'app(req, res) with a socket-less http.IncomingMessage and an http.ServerResponse whose end() resolves (no serialisation)',
      lwa: 'Express on http.Server 127.0.0.1, keep-alive http.Agent client, request to body fully read',
    },
  })}\n`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
