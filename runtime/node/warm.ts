import type { Context } from 'aws-lambda';
import { monotonicMs } from './time';
// The protocol's numbers, shared with the Python shim and the warmer: one file, in the Python package.
import contract from '../python/warm_web/warm_contract.json';

export interface WarmPing {
  readonly round: string;
  readonly expected: number;
  readonly holdUntilMs: number;
  /** Hold this long after the ping arrives, but never past `holdUntilMs`. */
  readonly holdForMs?: number;
}

export interface EnvironmentInfo {
  readonly environmentId: string;
  readonly coldStart: boolean;
  readonly initDurationMs: number;
}

export const PROTOCOL_VERSION: number = contract.protocolVersion;
/** Longest a ping is ever held, whatever it asks for. */
export const MAX_HOLD_MS: number = contract.maxHoldMs;
/** Time left to the invoke after the hold, so the answer always gets out before the timeout. */
export const HOLD_MARGIN_MS: number = contract.holdMarginMs;
/** Resolution of `receivedAtMs` and `heldMs` in an answer. */
export const RESOLUTION_MS: number = contract.resolutionMs;
export const ERROR_PREFIX: string = contract.errorPrefix;
const PER_MS = Math.round(1 / RESOLUTION_MS);

/** Milliseconds as answers carry them. */
export function toResolution(ms: number): number {
  return Math.round(ms * PER_MS) / PER_MS;
}

/**
 * Epoch milliseconds with a fraction (Date.now() has whole ones): the warmer compares arrivals across
 * environments. Called only for pings, so the perf_hooks it loads on first use cost INIT nothing.
 */
function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

type Json = Record<string, unknown>;

export function isWarmPing(event: unknown): event is { warmWeb: unknown } {
  return typeof event === 'object' && event !== null && Object.prototype.hasOwnProperty.call(event, 'warmWeb');
}

function describe(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

/** Validates a ping's `warmWeb` payload; the string is the reason it is malformed. */
export function parseWarmPing(payload: unknown): WarmPing | string {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    return `warmWeb must be an object, got ${describe(payload)}`;
  }
  const { v, round, expected, holdUntilMs, holdForMs } = payload as Json;
  if (v !== PROTOCOL_VERSION) {
    return `v must be ${PROTOCOL_VERSION}, got ${describe(v)}`;
  }
  if (typeof round !== 'string' || round === '') {
    return `round must be a non-empty string, got ${describe(round)}`;
  }
  if (typeof expected !== 'number' || !Number.isInteger(expected) || expected < 1) {
    return `expected must be an integer >= 1, got ${describe(expected)}`;
  }
  if (typeof holdUntilMs !== 'number' || !Number.isFinite(holdUntilMs)) {
    return `holdUntilMs must be an epoch time in milliseconds, got ${describe(holdUntilMs)}`;
  }
  if (holdForMs === undefined) {
    return { round, expected, holdUntilMs };
  }
  if (typeof holdForMs !== 'number' || !Number.isFinite(holdForMs) || holdForMs < 0) {
    return `holdForMs must be a number of milliseconds >= 0, got ${describe(holdForMs)}`;
  }
  return { round, expected, holdUntilMs, holdForMs };
}

/**
 * Epoch milliseconds to hold until: the ping's barrier (`holdForMs` after arrival when given, never past
 * `holdUntilMs`), capped by the invoke's remaining time and MAX_HOLD_MS.
 */
export function holdDeadline(ping: WarmPing, nowMs: number, remainingMs: number | undefined): number {
  let deadline = Math.min(ping.holdUntilMs, nowMs + (ping.holdForMs ?? Infinity), nowMs + MAX_HOLD_MS);
  if (remainingMs !== undefined) {
    deadline = Math.min(deadline, nowMs + remainingMs - HOLD_MARGIN_MS);
  }
  return deadline;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function remainingTime(context: Context | undefined): number | undefined {
  return typeof context?.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : undefined;
}

/** Answers a warm ping after holding it at the round's barrier; malformed pings are answered, not thrown. */
export async function answerWarmPing(payload: unknown, context: Context | undefined, environment: EnvironmentInfo): Promise<Json> {
  const ping = parseWarmPing(payload);
  if (typeof ping === 'string') {
    return { warmWeb: { v: PROTOCOL_VERSION, error: ERROR_PREFIX + ping } };
  }
  const started = monotonicMs();
  const receivedAtMs = epochMs();
  const deadline = holdDeadline(ping, receivedAtMs, remainingTime(context));
  // Timers may fire a little early against the wall clock; the barrier must not.
  for (let left = deadline - epochMs(); left > 0; left = deadline - epochMs()) {
    await sleep(left);
  }
  return {
    warmWeb: {
      v: PROTOCOL_VERSION,
      round: ping.round,
      environmentId: environment.environmentId,
      coldStart: environment.coldStart,
      initDurationMs: environment.initDurationMs,
      receivedAtMs: toResolution(receivedAtMs),
      heldMs: toResolution(monotonicMs() - started),
      runtime: 'node',
    },
  };
}
