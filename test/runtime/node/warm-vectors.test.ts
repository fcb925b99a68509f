// The shared warm-protocol vectors (test/vectors/warm/), also read by the Python shim's tests: valid pings
// held on fake timers (the hold asserted exactly, not against the wall clock), malformed pings answered
// with the exact error text, and the contract's numbers as this runtime reads them.
import * as fs from 'fs';
import * as path from 'path';
import { type Json, lambdaContext } from './support/events';
import { FIXTURES, loadFixture } from './support/fixtures';
import { createShim, type Shim } from '../../../runtime/node/shim';
import { ERROR_PREFIX, HOLD_MARGIN_MS, MAX_HOLD_MS, PROTOCOL_VERSION, RESOLUTION_MS, toResolution } from '../../../runtime/node/warm';

const VECTORS = path.join(__dirname, '..', '..', 'vectors', 'warm');
const CONTRACT = path.join(__dirname, '..', '..', '..', 'runtime', 'python', 'warm_web', 'warm_contract.json');

interface WarmVector {
  readonly name: string;
  readonly clockMs?: number;
  readonly remainingMs?: number;
  readonly event: Json;
  readonly expect: {
    readonly error?: string;
    readonly fields?: string[];
    readonly answer?: Json & { heldMs: number };
    readonly types?: Record<string, string>;
  };
}

const vectors: WarmVector[] = fs.readdirSync(VECTORS).filter((f) => f.endsWith('.json')).sort()
  .map((f) => JSON.parse(fs.readFileSync(path.join(VECTORS, f), 'utf-8')) as WarmVector);
const valid = vectors.filter((v) => v.expect.error === undefined).map((v) => [v.name, v] as const);
const malformed = vectors.filter((v) => v.expect.error !== undefined).map((v) => [v.name, v] as const);

const requestCount = (): number => loadFixture<{ requestCount: () => number }>('express-app.js').requestCount();

let shim: Shim;
beforeAll(async () => {
  shim = createShim({ app: 'express-app.app', kind: 'listener', taskRoot: FIXTURES, functionName: 'test-fn' });
  await shim.ready;
});
beforeEach(() => {
  jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
});
afterEach(() => {
  jest.restoreAllMocks();
  jest.useRealTimers();
});

test('the vectors are there', () => {
  expect(valid.length).toBeGreaterThanOrEqual(8);
  expect(malformed.length).toBeGreaterThanOrEqual(20);
});

test('the shim reads the contract', () => {
  const contract = JSON.parse(fs.readFileSync(CONTRACT, 'utf-8'));
  expect([PROTOCOL_VERSION, MAX_HOLD_MS, HOLD_MARGIN_MS, RESOLUTION_MS, ERROR_PREFIX]).toEqual(
    [contract.protocolVersion, contract.maxHoldMs, contract.holdMarginMs, contract.resolutionMs, contract.errorPrefix]);
});

test.each(valid)('%s', async (_name, vector) => {
  jest.useFakeTimers({ now: vector.clockMs, doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
  const context = lambdaContext(vector.remainingMs === undefined
    ? { getRemainingTimeInMillis: undefined }
    : { getRemainingTimeInMillis: () => vector.remainingMs! });
  const before = requestCount();
  let answer: Json | undefined;
  const pending = shim.handler(vector.event, context).then((result) => {
    answer = (result as { warmWeb: Json }).warmWeb;
  });
  const { heldMs } = vector.expect.answer!;
  // Not answered a millisecond before the hold ends; answered when it does.
  if (heldMs > 0) {
    await jest.advanceTimersByTimeAsync(heldMs - 1);
    expect(answer).toBeUndefined();
  }
  await jest.advanceTimersByTimeAsync(heldMs > 0 ? 1 : 0);
  await pending;
  expect(Object.keys(answer!).sort()).toEqual([...vector.expect.fields!].sort());
  expect(answer).toMatchObject(vector.expect.answer!);
  for (const [field, type] of Object.entries(vector.expect.types!)) expect(typeof answer![field]).toBe(type);
  expect(answer!.runtime).toBe('node');
  expect(requestCount()).toBe(before);
});

test.each(malformed)('%s', async (_name, vector) => {
  const before = requestCount();
  await expect(shim.handler(vector.event, lambdaContext())).resolves.toEqual({ warmWeb: { v: 1, error: vector.expect.error } });
  expect(requestCount()).toBe(before);
});

test.each([[1732400000012.34, 1732400000012.3], [0.05, 0.1], [0.25, 0.3], [341, 341], [2.449, 2.4]])(
  'answers carry %p ms as %p (the contract\'s resolution, half up as in Python)', (ms, want) => {
    expect(toResolution(ms)).toBe(want);
  });

test('a real answer is at the contract\'s resolution', async () => {
  const answer = (await shim.handler({ warmWeb: { v: 1, round: 'r', expected: 1, holdUntilMs: 0 } }, lambdaContext()) as { warmWeb: Json }).warmWeb;
  // Already on a step: rounding it again changes nothing (dividing an epoch time by 0.1 would not be exact).
  for (const field of ['receivedAtMs', 'heldMs']) expect(toResolution(answer[field] as number)).toBe(answer[field]);
});
