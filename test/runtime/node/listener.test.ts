// What plain Node request listeners and http.Server apps do that Express apps mostly hide: headers given to
// writeHead(), an explicit Transfer-Encoding, req.socket's ends, an exported http.Server, and what an app
// failure shows. Each behaviour is checked against the same app behind a real http.Server on 127.0.0.1.
import { execFile } from 'child_process';
import * as http from 'http';
import * as path from 'path';
import { eventFor, type Json, lambdaContext, type RequestSpec, type Shape, SHAPES } from './support/events';
import { FIXTURES, loadFixture } from './support/fixtures';
import { type Observed, observeLambda, sendOverHttp, startServer } from './support/http';
import { buildNodeLayer, type NodeLayer } from './support/layer';
import { createShim, type Shim } from '../../../runtime/node/shim';

type Listener = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const MULTI_COOKIE_SHAPES = SHAPES.filter((shape) => shape !== 'alb-single');

/** A shim that has served one request already, so the cold-start EMF line is out of the way. */
async function listenerShim(app: string): Promise<Shim> {
  const shim = createShim({ app, kind: 'listener', taskRoot: FIXTURES, functionName: 'test-fn' });
  await shim.ready;
  const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  await shim.handler({ warmWeb: { v: 1, round: 'warm-up', expected: 1, holdUntilMs: 0 } }, lambdaContext());
  write.mockRestore();
  return shim;
}

async function viaShim(shim: Shim, shape: Shape, spec: RequestSpec): Promise<{ result: Json; observed: Observed }> {
  const result = await shim.handler(eventFor(shape, spec), lambdaContext()) as Json;
  return { result, observed: observeLambda(shape, result) };
}

function stop(server: http.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** The status line's reason phrase a real client receives. */
function statusMessageOverHttp(port: number, requestPath: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: requestPath, agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusMessage));
    }).on('error', reject);
  });
}

afterEach(() => {
  jest.restoreAllMocks();
});

describe('a plain Node listener, through the shim and behind a real http.Server', () => {
  let shim: Shim;
  let server: http.Server;
  let port: number;

  beforeAll(async () => {
    ({ server, port } = await startServer(loadFixture<{ listener: Listener }>('plain-node-listener.js').listener));
    shim = await listenerShim('plain-node-listener.listener');
  });

  afterAll(() => stop(server));

  interface Case {
    readonly path: string;
    readonly reference: (observed: Observed) => void;
    readonly shapes: readonly Shape[];
  }

  const CASES: readonly Case[] = [
    {
      path: '/object',
      reference: (o) => {
        expect([o.status, o.headers.location, o.headers['content-type'], o.cookies.length]).toEqual([302, '/there?x=1', 'text/plain; charset=utf-8', 2]);
      },
      shapes: MULTI_COOKIE_SHAPES,
    },
    {
      path: '/flat',
      reference: (o) => {
        expect([o.status, o.headers['content-type'], o.headers['x-repeat'], o.cookies]).toEqual([201, 'application/json', 'one, two', ['a=1', 'b=2']]);
      },
      shapes: MULTI_COOKIE_SHAPES,
    },
    {
      path: '/nested',
      reference: (o) => {
        expect([o.headers['content-type'], o.headers['x-nested'], o.cookies]).toEqual(['text/plain', 'yes', ['n=1']]);
      },
      shapes: SHAPES,
    },
    {
      path: '/message',
      reference: (o) => expect([o.status, o.headers['x-teapot'], o.body.toString()]).toEqual([418, 'yes', 'teapot']),
      shapes: SHAPES,
    },
    {
      path: '/mixed',
      reference: (o) => {
        expect([o.headers['x-early'], o.headers['content-type'], o.headers.location]).toEqual(['set first', 'text/plain', '/mixed-too']);
      },
      shapes: SHAPES,
    },
    {
      path: '/chunked',
      reference: (o) => {
        expect(o.body.toString('utf8')).toBe('Combine and conquer ✓');
        expect(o.headers['content-length']).toBeUndefined();
      },
      shapes: SHAPES,
    },
    {
      path: '/chunked-head',
      reference: (o) => expect([...o.body.subarray(0, 5)]).toEqual([0x00, 0x0d, 0x0a, 0xff, 0x41]),
      shapes: SHAPES,
    },
    {
      path: '/chunked-empty',
      reference: (o) => expect([o.status, o.body.length]).toEqual([204, 0]),
      shapes: SHAPES,
    },
  ];

  describe.each(CASES)('$path', ({ path: requestPath, reference, shapes }) => {
    const spec: RequestSpec = { method: 'GET', path: requestPath, headers: [['host', 'example.test']] };
    let expected: Observed;

    beforeAll(async () => {
      expected = await sendOverHttp(port, spec);
    });

    test('HTTP reference is as the app intends', () => {
      reference(expected);
    });

    test.each(shapes)('%s event gives the same status, headers, cookies and body as HTTP', async (shape) => {
      const { result, observed } = await viaShim(shim, shape, spec);
      expect(observed).toEqual(expected);
      // The body is de-chunked, so nothing may claim it is still framed.
      expect(Object.keys((result.headers ?? result.multiValueHeaders) as Json)).not.toContain('transfer-encoding');
    });
  });

  test('single-value ALB gets the last of the Set-Cookie headers given to writeHead', async () => {
    jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    const { result } = await viaShim(shim, 'alb-single', { method: 'GET', path: '/object', headers: [['host', 'example.test']] });
    expect(result).toMatchObject({ statusCode: 302, headers: { 'location': '/there?x=1', 'set-cookie': 'b=2; HttpOnly' } });
  });

  test('writeHead(status, statusMessage, headers): ALB reports the reason phrase a client receives', async () => {
    const message = await statusMessageOverHttp(port, '/message');
    expect(message).toBe('Short And Stout');
    for (const shape of ['alb-multi', 'alb-single'] as const) {
      const { result } = await viaShim(shim, shape, { method: 'GET', path: '/message' });
      expect(result.statusDescription).toBe(`418 ${message}`);
    }
  });

  describe('req.socket', () => {
    const socketOf = async (shape: Shape, spec: RequestSpec): Promise<Json> => {
      const { result, observed } = await viaShim(shim, shape, spec);
      expect(result.statusCode).toBe(200);
      return JSON.parse(observed.body.toString()) as Json;
    };

    test.each(SHAPES)('%s: address() and the ends are what a real server reports for the same Host', async (shape) => {
      const spec: RequestSpec = { method: 'GET', path: '/socket', headers: [['host', `127.0.0.1:${port}`]], sourceIp: '127.0.0.1' };
      const reference = JSON.parse((await sendOverHttp(port, spec)).body.toString()) as Json;
      expect(reference).toEqual({
        address: { address: '127.0.0.1', family: 'IPv4', port },
        localAddress: '127.0.0.1',
        localPort: port,
        remoteAddress: '127.0.0.1',
        remoteFamily: 'IPv4',
        remotePortType: 'number',
      });
      expect(await socketOf(shape, spec)).toEqual(reference);
    });

    test('the port is the one the integration accepted the request on (X-Forwarded-Port), else the scheme\'s', async () => {
      const forwarded = await socketOf('rest', { method: 'GET', path: '/socket', headers: [['host', 'api.example.test'], ['x-forwarded-port', '443']], sourceIp: '2001:db8::7' });
      expect(forwarded).toMatchObject({ address: { address: '127.0.0.1', family: 'IPv4', port: 443 }, remoteAddress: '2001:db8::7', remoteFamily: 'IPv6' });
      const plain = await socketOf('url', { method: 'GET', path: '/socket', headers: [['host', 'api.example.test'], ['x-forwarded-proto', 'http']] });
      expect(plain).toMatchObject({ localPort: 80, address: { port: 80 } });
      const ipv6Host = await socketOf('url', { method: 'GET', path: '/socket', headers: [['host', '[::1]:8443']] });
      expect(ipv6Host).toMatchObject({ address: { address: '::1', family: 'IPv6', port: 8443 } });
    });
  });
});

describe('an exported http.Server', () => {
  test('is served through its request listeners, in order, and never listens', async () => {
    // The reference: a second instance of the same module, started as its users would start it.
    let reference!: http.Server;
    jest.isolateModules(() => {
      reference = loadFixture<http.Server>('node-server.js');
    });
    const { port } = await new Promise<{ port: number }>((resolve) => reference.listen(0, '127.0.0.1', () => resolve(reference.address() as { port: number })));
    const shim = await listenerShim('node-server.default');
    try {
      for (const requestPath of ['/a', '/b?c=d']) {
        const spec: RequestSpec = { method: 'GET', path: requestPath.split('?')[0], query: requestPath.split('?')[1], headers: [['host', 'example.test']] };
        const expected = await sendOverHttp(port, spec);
        expect((await viaShim(shim, 'http', spec)).observed).toEqual(expected);
      }
      expect((await sendOverHttp(port, { method: 'GET', path: '/c' })).body.toString()).toBe('served GET /c, counted 3, called on the server: true');
    } finally {
      await stop(reference);
    }
    expect(loadFixture<http.Server>('node-server.js').listening).toBe(false);
  });

  test('without a request listener fails INIT naming the export', () => {
    expect(() => createShim({ app: 'node-server-empty.default', kind: 'listener', taskRoot: FIXTURES })).toThrow(
      /^warm-web: WARM_WEB_APP="node-server-empty\.default": export "default" of .*node-server-empty\.js is an http\.Server without a 'request' listener/,
    );
  });

  test('as a handler fails INIT saying how it is served', () => {
    expect(() => createShim({ app: 'node-server.default', kind: 'handler', taskRoot: FIXTURES })).toThrow(
      /WARM_WEB_APP="node-server\.default": export "default" of .*node-server\.js is an http\.Server, not a handler function \(an http\.Server is served with WebApp\.nodeRequestListener\)/,
    );
  });
});

test('an app failure logs the method and the path, never the query string', async () => {
  const shim = await listenerShim('failing-listener.listener');
  const error = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  const result = await shim.handler(eventFor('http', { method: 'GET', path: '/throw', query: 'token=s3cr3t&next=%2Fhome' }), lambdaContext()) as Json;
  expect(result).toMatchObject({ statusCode: 500, body: 'Internal Server Error' });
  expect(error).toHaveBeenCalledTimes(1);
  const logged = error.mock.calls[0];
  expect(logged.slice(0, 3)).toEqual(['warm-web: the app failed to handle', 'GET', '/throw']);
  expect((logged[3] as Error).message).toBe('listener failed on GET');
  expect(logged.map((part) => (part instanceof Error ? `${part.stack}` : String(part))).join(' ')).not.toMatch(/s3cr3t|token|next=/);
});

describe('NODE_ENV for listener apps', () => {
  const userEnv = process.env.NODE_ENV;

  afterEach(() => {
    process.env.NODE_ENV = userEnv;
  });

  /** Express's own error page for GET /fail from the app behind a real server, created under `env`. */
  async function referencePage(env: string): Promise<string> {
    process.env.NODE_ENV = env;
    let app!: Listener;
    jest.isolateModules(() => {
      app = loadFixture<{ app: Listener }>('express-default-errors.js').app;
    });
    const { server, port } = await startServer(app);
    try {
      return (await sendOverHttp(port, { method: 'GET', path: '/fail' })).body.toString();
    } finally {
      await stop(server);
    }
  }

  /** The same app loaded by the shim (a fresh module instance), with NODE_ENV as given beforehand. */
  async function shimPage(env: string | undefined): Promise<{ page: string; appEnv: string }> {
    if (env === undefined) {
      delete process.env.NODE_ENV;
    } else {
      process.env.NODE_ENV = env;
    }
    let shim!: Shim;
    let appEnv!: string;
    jest.isolateModules(() => {
      shim = createShim({ app: 'express-default-errors.app', kind: 'listener', taskRoot: FIXTURES });
      appEnv = loadFixture<{ env: string }>('express-default-errors.js').env;
    });
    jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const result = await shim.handler(eventFor('http', { method: 'GET', path: '/fail' }), lambdaContext()) as Json;
    expect(result.statusCode).toBe(500);
    return { page: result.body as string, appEnv };
  }

  test.each([['unset', undefined], ['empty', '']])('%s, it is production before the app is loaded: Express sends no stack trace', async (_name, env) => {
    const logged = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const production = await referencePage('production');
    expect(production).toContain('Internal Server Error');
    expect(production).not.toContain('db.js');

    const { page, appEnv } = await shimPage(env);
    expect(appEnv).toBe('production');
    expect(process.env.NODE_ENV).toBe('production');
    expect(page).toBe(production);
    // Express logs it instead, on the next turn (finalhandler defers it).
    await new Promise((resolve) => setImmediate(resolve));
    expect(logged.mock.calls.map((call) => String(call[0]))).toEqual([expect.stringContaining('db password rejected'), expect.stringContaining('db password rejected')]);
  });

  test.each(['development', 'staging'])('a user-set NODE_ENV=%s is kept', async (env) => {
    jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const reference = await referencePage(env);
    const { page, appEnv } = await shimPage(env);
    expect([appEnv, process.env.NODE_ENV]).toEqual([env, env]);
    // Outside production Express's page carries the message and the stack (whose frames differ between the two).
    const stacked = 'Error: db password rejected at /srv/app/db.js<br> &nbsp; &nbsp;at ';
    expect([reference.includes(stacked), page.includes(stacked)]).toEqual([true, true]);
    await new Promise((resolve) => setImmediate(resolve));
  });

  test('a handler app is left as it is', () => {
    delete process.env.NODE_ENV;
    createShim({ app: 'cjs-handler.handler', kind: 'handler', taskRoot: FIXTURES });
    expect(process.env.NODE_ENV).toBeUndefined();
  });
});

describe('in the layer bundle, loaded as Lambda loads it', () => {
  let layer: NodeLayer;
  let bundle: string;

  beforeAll(async () => {
    layer = await buildNodeLayer();
    bundle = layer.entry;
  }, 30_000);

  afterAll(() => layer.remove());

  /** The handler's results, one per event, from a fresh process whose environment has no NODE_ENV. */
  function run(app: string, events: unknown[]): Promise<{ results: Json[]; stderr: string }> {
    const env = { PATH: process.env.PATH, LAMBDA_TASK_ROOT: FIXTURES, WARM_WEB_APP: app, WARM_WEB_APP_KIND: 'listener', AWS_LAMBDA_FUNCTION_NAME: 'listener-fn' };
    const runner = path.join(__dirname, 'support', 'lambda-runner.js');
    return new Promise((resolve, reject) => {
      execFile(process.execPath, [runner, bundle, JSON.stringify(events)], { env }, (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`${error.message}\n${stderr}`));
          return;
        }
        const results = stdout.split('\n').filter((line) => line.startsWith('RESULT ')).map((line) => JSON.parse(line.slice('RESULT '.length)) as Json);
        resolve({ results, stderr });
      });
    });
  }

  test('an ES module whose default export is an http.Server is served', async () => {
    const { results } = await run('esm-server.default', [eventFor('url', { method: 'GET', path: '/esm', query: 'x=1' })]);
    expect(results).toEqual([expect.objectContaining({ statusCode: 200, body: 'esm server /esm?x=1' })]);
  });

  test('an Express app in an environment without NODE_ENV sends no stack trace', async () => {
    const { results, stderr } = await run('express-default-errors.app', [eventFor('http', { method: 'GET', path: '/fail' })]);
    expect(results).toEqual([expect.objectContaining({ statusCode: 500 })]);
    expect(results[0].body).toContain('Internal Server Error');
    expect(results[0].body).not.toContain('db.js');
    // The stack goes to the log instead.
    expect(stderr).toContain('Error: db password rejected at /srv/app/db.js');
  });
});
