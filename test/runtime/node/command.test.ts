// The command event in the Node shim: function commands in a child node process, bounded by the invoke's
// deadline; Django and Flask commands refused; HTTP events never run one.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { eventFor, type Json, lambdaContext, SHAPES } from './support/events';
import { FIXTURES, loadFixture } from './support/fixtures';
import { answerCommand } from '../../../runtime/node/command';
import { createShim } from '../../../runtime/node/shim';

const ROOT = path.join(FIXTURES, 'commands');
type Answer = { exitCode: number; output: string; truncated: boolean; durationMs: number; error?: string };

async function run(command: Json, options: { remaining?: () => number; outputCap?: number } = {}): Promise<Answer> {
  const context = lambdaContext({ getRemainingTimeInMillis: options.remaining ?? (() => 60_000) });
  const answer = await answerCommand({ v: 1, ...command }, context, { taskRoot: ROOT, functionName: 'fn', outputCap: options.outputCap });
  return (answer as { warmWebCommand: Answer }).warmWebCommand;
}

/** Running (a zombie waiting for its reaper counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] !== 'Z';
  } catch {
    return false;
  }
}

let tmp: string;
let stdout: string[];
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-command-'));
  stdout = [];
  // The EMF lines go to stdout and the command's output is copied to stderr (the function's log).
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout.push(String(chunk));
    return true;
  });
  jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
});
afterEach(() => {
  jest.restoreAllMocks();
  fs.rmSync(tmp, { recursive: true, force: true });
});
const emf = (): Json[] => stdout.join('').split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Json);

describe('function commands', () => {
  test('a CommonJS export is called with the args, awaited, and its result printed as JSON after its output', async () => {
    const answer = await run({ kind: 'function', target: 'jobs/tasks.add', args: ['2', '40'] });
    expect(answer).toEqual({ v: 1, exitCode: 0, output: 'adding ["2","40"]\nto stderr\n{"sum":42}\n', truncated: false, durationMs: expect.any(Number) });
    expect(answer.durationMs).toBeGreaterThan(0);
  });

  test('an ES module export is imported and awaited; a result JSON cannot hold is printed as text', async () => {
    expect((await run({ kind: 'function', target: 'esm-job.run', args: ['a'] })).output).toBe('{"esm":true,"args":["a"]}\n');
    expect((await run({ kind: 'function', target: 'jobs/tasks.unprintable' })).output).toBe('10\n');
  });

  test('an exception exits 1 with its stack; the exit status the function sets is the answer\'s', async () => {
    const answer = await run({ kind: 'function', target: 'jobs/tasks.boom', args: ['x'] });
    expect(answer.exitCode).toBe(1);
    expect(answer.output.indexOf('before the error')).toBeLessThan(answer.output.indexOf('Error: boom: x'));
    expect(answer.output).toMatch(/at exports\.boom .*tasks\.js/);
    expect((await run({ kind: 'function', target: 'jobs/tasks.exit3' })).exitCode).toBe(3);
  });

  test('a missing module or an export that is not a function exits 1 and says which', async () => {
    const missing = await run({ kind: 'function', target: 'jobs/nothing.run' });
    expect(missing.exitCode).toBe(1);
    expect(missing.output).toContain(`warm-web: no module jobs/nothing (.js, .cjs, .mjs) in ${ROOT}`);
    const notFunction = await run({ kind: 'function', target: 'jobs/tasks.notAFunction' });
    expect(notFunction.exitCode).toBe(1);
    expect(notFunction.output).toContain('export "notAFunction" of');
  });

  test('a command outliving its deadline is stopped with 124, its process group gone', async () => {
    const pids = path.join(tmp, 'pids');
    // Plenty of time until the command has started its grandchild, then 1 s left: the stop point.
    const answer = await run({ kind: 'function', target: 'jobs/tasks.hang', args: [pids] }, { remaining: () => (fs.existsSync(pids) ? 1000 : 60_000) });
    expect(answer.exitCode).toBe(124);
    const [pid, grandchild] = fs.readFileSync(pids, 'utf8').split(' ').map(Number);
    expect(answer.output.startsWith(`pids ${pid} ${grandchild}\n`)).toBe(true);
    expect(answer.output).toMatch(/\nwarm-web: the command did not finish within the function timeout \(stopped after \d+\.\d s, 1 s before the invoke's deadline\)\n$/);
    expect(alive(pid)).toBe(false);
    expect(alive(grandchild)).toBe(false);
  });

  test('output over the cap is cut at the start: the end is kept', async () => {
    const answer = await run({ kind: 'function', target: 'jobs/tasks.flood', args: ['20000'] }, { outputCap: 64 * 1024 });
    expect(answer.truncated).toBe(true);
    expect(answer.output.endsWith('line 0019999\nthe end\n')).toBe(true);
    expect(answer.output).not.toContain('line 0000000');
    const escaped = Buffer.byteLength(JSON.stringify(answer.output));
    expect(escaped).toBeLessThanOrEqual(64 * 1024);
    expect(escaped).toBeGreaterThan(63 * 1024);
  });

  test('the default cap keeps the whole answer within 1 MiB', async () => {
    const answer = await run({ kind: 'function', target: 'jobs/tasks.flood', args: ['200000'] });
    expect(answer.truncated).toBe(true);
    expect(Buffer.byteLength(JSON.stringify({ warmWebCommand: answer }))).toBeLessThanOrEqual(1024 * 1024);
    expect(answer.output.endsWith('the end\n')).toBe(true);
  });

  test('a non-zero exit emits one CommandFailures EMF line; a success logs a plain line', async () => {
    await run({ kind: 'function', target: 'jobs/tasks.boom' });
    expect(emf()).toEqual([expect.objectContaining({
      _aws: { Timestamp: expect.any(Number), CloudWatchMetrics: [{ Namespace: 'WarmWeb', Dimensions: [['FunctionName', 'CommandKind']], Metrics: [{ Name: 'CommandFailures', Unit: 'Count' }] }] },
      FunctionName: 'fn',
      CommandKind: 'function',
      CommandFailures: 1,
      exitCode: 1,
      warmWebCommand: 'jobs/tasks.boom',
    })]);
    stdout.length = 0;
    await run({ kind: 'function', target: 'jobs/tasks.add', args: ['1'] });
    expect(emf()).toEqual([{ warmWebCommand: 'jobs/tasks.add 1', kind: 'function', exitCode: 0, durationMs: expect.any(Number), truncated: false }]);
  });
});

describe('malformed or unfit commands run nothing', () => {
  test.each([
    ['migrate', 'warmWebCommand must be an object'],
    [{ v: 2, kind: 'function', target: 'jobs/tasks.touch' }, 'v must be 1'],
    [{ v: 1, kind: 'rake' }, 'kind must be django, flask or function'],
    [{ v: 1, kind: 'function', target: 'jobs/tasks.touch', args: 'x' }, 'args must be a list of strings'],
    [{ v: 1, kind: 'function', target: 'jobs/tasks.touch', args: [1] }, 'args must be a list of strings'],
    [{ v: 1, kind: 'function', target: 'tasks:rebuild_index' }, 'target must be path/module.export'],
    [{ v: 1, kind: 'function', target: '/etc/passwd.x' }, 'target must be path/module.export'],
    [{ v: 1, kind: 'django', args: ['migrate'] }, 'a django command needs the Python runtime'],
    [{ v: 1, kind: 'flask', args: ['routes'] }, 'a flask command needs the Python runtime'],
  ])('%j', async (command, message) => {
    const answer = await answerCommand(command, lambdaContext(), { taskRoot: ROOT, functionName: 'fn' }) as { warmWebCommand: Json };
    expect(Object.keys(answer)).toEqual(['warmWebCommand']);
    expect(answer.warmWebCommand.v).toBe(1);
    expect(answer.warmWebCommand.error).toMatch(/^malformed command: /);
    expect(answer.warmWebCommand.error).toContain(message);
    expect(emf()).toEqual([]);
  });
});

describe('only a direct invoke runs a command', () => {
  const touch = (marker: string): Json => ({ warmWebCommand: { v: 1, kind: 'function', target: 'jobs/tasks.touch', args: [marker] } });
  const requestCount = (): number => loadFixture<{ requestCount: () => number }>('express-app.js').requestCount();

  test.each(SHAPES)('%s events carrying a command in the body, query or a header are served by the app', async (shape) => {
    const shim = createShim({ app: 'express-app.app', kind: 'listener', taskRoot: FIXTURES, functionName: 'fn' });
    await shim.ready;
    const marker = path.join(tmp, 'ran');
    const payload = JSON.stringify(touch(marker));
    const before = requestCount();
    const specs = [
      { method: 'POST', path: '/hello', body: Buffer.from(payload), headers: [['content-type', 'application/json']] as const },
      { method: 'GET', path: '/hello', query: `warmWebCommand=${encodeURIComponent(payload)}` },
      { method: 'GET', path: '/hello', headers: [['warmwebcommand', payload]] as const },
    ];
    for (const spec of specs) {
      const answer = await shim.handler(eventFor(shape, spec), lambdaContext()) as Json;
      expect(answer.statusCode).toEqual(expect.any(Number));
      expect(answer).not.toHaveProperty('warmWebCommand');
    }
    expect(requestCount() - before).toBe(3);
    expect(fs.existsSync(marker)).toBe(false);
  });

  test('a handler app gets its events unchanged, nested commands included; a top-level one runs', async () => {
    const shim = createShim({ app: 'handler.handler', kind: 'handler', taskRoot: ROOT, functionName: 'fn' });
    const { seen } = loadFixture<{ seen: unknown[] }>('commands/handler.js');
    const marker = path.join(tmp, 'ran');
    const nested = [{ detail: touch(marker) }, { body: JSON.stringify(touch(marker)) }, [touch(marker)], JSON.stringify(touch(marker))];
    seen.length = 0;
    for (const event of nested) {
      expect(await shim.handler(event, lambdaContext())).toEqual({ handled: true });
    }
    expect(seen).toEqual(nested);
    expect(fs.existsSync(marker)).toBe(false);
    const answer = await shim.handler(touch(marker), lambdaContext()) as { warmWebCommand: Answer };
    expect(answer.warmWebCommand.exitCode).toBe(0);
    expect(fs.readFileSync(marker, 'utf8')).toBe('ran');
    expect(seen).toHaveLength(nested.length);
  });
});
