// The handler kind, default exports, and how a bad WARM_WEB_APP fails INIT. ES modules need a real
// import(), which Jest's VM sandbox lacks: bundle.test.ts covers them in child processes.
import { eventFor, type Json, lambdaContext } from './support/events';
import { FIXTURES } from './support/fixtures';
import { createShim, type Shim, type ShimOptions } from '../../../runtime/node/shim';

async function load(options: Partial<ShimOptions>): Promise<Shim> {
  const shim = createShim({ kind: 'handler', taskRoot: FIXTURES, app: undefined, ...options });
  await shim.ready;
  return shim;
}

beforeEach(() => {
  jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
});

afterEach(() => {
  jest.restoreAllMocks();
});

describe('handler kind', () => {
  test('an async CommonJS handler gets the very event and context, and its result is returned', async () => {
    const shim = await load({ app: 'cjs-handler.handler' });
    const event = { Records: [{ body: 'hello' }] };
    const context = lambdaContext();
    const result = await shim.handler(event, context) as Json;
    expect(result.kind).toBe('cjs');
    expect(result.event).toBe(event);
    expect(result.context).toBe(context);
  });

  test('HTTP-shaped events are passed through unadapted', async () => {
    const shim = await load({ app: 'cjs-handler.handler' });
    const event = eventFor('http', { method: 'GET', path: '/hello' });
    expect((await shim.handler(event, lambdaContext()) as Json).event).toBe(event);
  });

  test('a callback-style handler answers through its callback', async () => {
    const shim = await load({ app: 'callback-handler.handler' });
    const event = { n: 1 };
    await expect(shim.handler(event, lambdaContext({ awsRequestId: 'cb-1' }))).resolves.toEqual({ kind: 'callback', event, requestId: 'cb-1' });
  });

  test('a callback-style handler can fail through its callback', async () => {
    const shim = await load({ app: 'callback-handler.handler' });
    await expect(shim.handler({ fail: true }, lambdaContext())).rejects.toThrow('callback failure');
  });

  test('an async handler that throws fails the invoke', async () => {
    const shim = await load({ app: 'cjs-handler.failing' });
    await expect(shim.handler({}, lambdaContext())).rejects.toThrow('handler failure');
  });

  test.each(['cjs-handler.handler', 'callback-handler.handler'])('%s never sees warm pings', async (app) => {
    const shim = await load({ app });
    const answer = await shim.handler({ warmWeb: { v: 1, round: 'r', expected: 1, holdUntilMs: 0 } }, lambdaContext()) as { warmWeb: Json };
    expect(answer.warmWeb).toMatchObject({ v: 1, round: 'r', environmentId: shim.environmentId, coldStart: true, runtime: 'node' });
    expect(answer).not.toHaveProperty('kind');
  });
});

test('module.default names module.exports itself', async () => {
  const shim = await load({ app: 'default-listener.default', kind: 'listener' });
  const result = await shim.handler(eventFor('url', { method: 'GET', path: '/x', query: 'y=1' }), lambdaContext()) as Json;
  expect(result).toMatchObject({ statusCode: 200, body: 'default GET /x?y=1' });
});

describe('a bad WARM_WEB_APP fails INIT with a message naming it', () => {
  test.each([
    ['a missing module', 'nope.handler', /WARM_WEB_APP="nope\.handler": no module nope \(\.js, \.mjs, \.cjs\) in /],
    ['a missing module in a folder', 'src/server.app', /WARM_WEB_APP="src\/server\.app": no module src\/server/],
    ['a missing export', 'cjs-handler.nothere', /WARM_WEB_APP="cjs-handler\.nothere": .*cjs-handler\.js has no export "nothere"/],
    ['an export that is not a function', 'cjs-handler.config', /WARM_WEB_APP="cjs-handler\.config": export "config" of .*cjs-handler\.js is object, not a function/],
    ['no export part', 'cjs-handler', /WARM_WEB_APP="cjs-handler" is not path\/module\.export/],
    ['an absolute path', '/var/task/index.handler', /WARM_WEB_APP="\/var\/task\/index\.handler" is not path\/module\.export/],
    ['an export that is not an identifier', 'cjs-handler.not-valid', /WARM_WEB_APP="cjs-handler\.not-valid" is not path\/module\.export/],
    ['a module that throws while loading', 'throws-at-load.handler', /WARM_WEB_APP="throws-at-load\.handler": loading .*throws-at-load\.js failed: cannot start: missing DATABASE_URL/],
  ])('%s (%s)', async (_name, app, message) => {
    await expect(load({ app })).rejects.toThrow(message);
  });

  test('an unset WARM_WEB_APP', async () => {
    await expect(load({ app: undefined })).rejects.toThrow(/^warm-web: WARM_WEB_APP is not set/);
  });

  test('an unknown kind names WARM_WEB_APP_KIND, its value and WARM_WEB_APP', async () => {
    await expect(load({ app: 'cjs-handler.handler', kind: 'wsgi' })).rejects.toThrow(
      'warm-web: WARM_WEB_APP_KIND="wsgi" (for WARM_WEB_APP="cjs-handler.handler") must be "handler" or "listener"',
    );
  });

  test('the load error keeps the original error as its cause', async () => {
    const error = await load({ app: 'throws-at-load.handler' }).catch((caught: unknown) => caught);
    expect((error as Error).cause).toEqual(expect.objectContaining({ message: 'cannot start: missing DATABASE_URL' }));
  });
});
