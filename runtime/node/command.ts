// The command event (docs/RUNTIME_CONTRACT.md "Command event"): a function of the app, run in a child
// node process so that it can be stopped at the invoke's deadline and its exit status is its own.
import { spawn } from 'child_process';
import { constants } from 'os';
import type { Context } from 'aws-lambda';
import { monotonicMs, round1 } from './time';

/** The answer's output: at most 1 MiB with the answer's own fields, the end kept. */
export const OUTPUT_CAP = 1024 * 1024 - 1024;
/** The invoke keeps this long to stop the command and answer. */
export const RESERVE_MS = 1000;
/** Between SIGTERM and SIGKILL. */
const GRACE_MS = 500;
const POLL_MS = 200;
const TIMED_OUT = 124;
const NODE_TARGET = /^(?!\/)(?:[A-Za-z0-9_@.-]+\/)*[A-Za-z0-9_@-][A-Za-z0-9_@.-]*\.[A-Za-z_$][A-Za-z0-9_$]*$/;

export interface CommandOptions {
  /** Where `path/module` is resolved from (LAMBDA_TASK_ROOT, or the slim code directory). */
  readonly taskRoot: string;
  /** The EMF FunctionName dimension. */
  readonly functionName: string;
  /** The answer's output cap in bytes, JSON-escaped. @default OUTPUT_CAP */
  readonly outputCap?: number;
}

export interface CommandResult {
  readonly exitCode: number;
  readonly output: string;
  readonly truncated: boolean;
  readonly durationMs: number;
}

interface Parsed {
  readonly kind: string;
  readonly args: string[];
  readonly target: string;
}

export function isCommand(event: unknown): event is { warmWebCommand: unknown } {
  return typeof event === 'object' && event !== null && Object.prototype.hasOwnProperty.call(event, 'warmWebCommand');
}

const shown = (value: unknown): string => (value === undefined ? 'nothing' : JSON.stringify(value).slice(0, 200));

/** Validates the event's `warmWebCommand` value; the string is why it is malformed or does not fit. */
export function parseCommand(command: unknown): Parsed | string {
  if (typeof command !== 'object' || command === null || Array.isArray(command)) {
    return `warmWebCommand must be an object, got ${shown(command)}`;
  }
  const { v, kind, args = [], target } = command as Record<string, unknown>;
  if (v !== 1) {
    return `v must be 1, got ${shown(v)}`;
  }
  if (kind !== 'django' && kind !== 'flask' && kind !== 'function') {
    return `kind must be django, flask or function, got ${shown(kind)}`;
  }
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string' && !a.includes('\0'))) {
    return `args must be a list of strings, got ${shown(args)}`;
  }
  if (kind !== 'function') {
    return `a ${kind} command needs the Python runtime, and this function runs Node (use WebCommand.function with path/module.export)`;
  }
  if (typeof target !== 'string' || !NODE_TARGET.test(target)) {
    return `a function command's target must be path/module.export, got ${shown(target)}`;
  }
  return { kind, args: args as string[], target };
}

/** Runs the command (the event's `warmWebCommand` value); the command answer, never a rejection. */
export async function answerCommand(command: unknown, context: Context, options: CommandOptions): Promise<unknown> {
  const parsed = parseCommand(command);
  if (typeof parsed === 'string') {
    return { warmWebCommand: { v: 1, error: `malformed command: ${parsed}` } };
  }
  const request = JSON.stringify([options.taskRoot, parsed.target, parsed.args]);
  const result = await runCommand(process.execPath, ['-e', CHILD, request], () => context.getRemainingTimeInMillis(), options.outputCap ?? OUTPUT_CAP);
  logCommand(options.functionName, parsed, result);
  return { warmWebCommand: { v: 1, ...result } };
}

/**
 * Runs `file` with `args` in a process group of its own, its output capped (end kept) and copied to the
 * log, stopped (SIGTERM, then SIGKILL to the group) once `remainingMs()` is down to RESERVE_MS.
 */
export function runCommand(file: string, args: readonly string[], remainingMs: () => number, cap: number): Promise<CommandResult> {
  const started = monotonicMs();
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: process.env });
  const chunks: Buffer[] = [];
  let kept = 0;
  let dropped = false;
  const take = (chunk: Buffer): void => {
    process.stderr.write(chunk);
    chunks.push(chunk);
    kept += chunk.length;
    while (kept - chunks[0].length >= cap) {
      kept -= chunks.shift()!.length;
      dropped = true;
    }
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  let timedOut = false;
  const group = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // The group is gone already.
    }
  };
  // The time left is read again each turn: the context, not a copy of it, is the clock.
  const poll = setInterval(() => {
    if (!timedOut && remainingMs() <= RESERVE_MS) {
      timedOut = true;
      group('SIGTERM');
      setTimeout(() => group('SIGKILL'), GRACE_MS).unref();
    }
  }, POLL_MS);
  return new Promise((resolve) => {
    let exitCode = 0;
    child.on('exit', (code, signal) => {
      exitCode = code ?? 128 + (signal ? constants.signals[signal] : 0);
      // Children of the command that outlive it (and would hold its output open) are stopped with it.
      group('SIGKILL');
    });
    const finish = (code: number): void => {
      clearInterval(poll);
      const ranMs = monotonicMs() - started;
      let data = Buffer.concat(chunks);
      if (data.length > cap) {
        data = data.subarray(data.length - cap);
        dropped = true;
      }
      if (dropped) {
        // A cut in the middle of a UTF-8 character: start at the next whole one.
        let start = 0;
        while (start < data.length && data[start] >= 0x80 && data[start] < 0xc0) {
          start++;
        }
        data = data.subarray(start);
      }
      const note = timedOut
        ? `warm-web: the command did not finish within the function timeout (stopped after ${(ranMs / 1000).toFixed(1)} s, ${RESERVE_MS / 1000} s before the invoke's deadline)\n`
        : '';
      const [output, cut] = capped(data.toString('utf8') + note, cap);
      resolve({ exitCode: timedOut ? TIMED_OUT : code, output, truncated: dropped || cut, durationMs: round1(ranMs) });
    };
    child.on('error', (error) => {
      chunks.push(Buffer.from(`warm-web: cannot start the command: ${error.message}\n`));
      finish(127);
    });
    child.on('close', () => finish(exitCode));
  });
}

/** At most `cap` bytes once JSON-escaped (escaping makes the answer longer than the output), end kept. */
function capped(text: string, cap: number): [string, boolean] {
  let cut = false;
  let over: number;
  while ((over = Buffer.byteLength(JSON.stringify(text)) - cap) > 0) {
    text = text.slice(over);
    cut = true;
  }
  return [text, cut];
}

/** A structured line per command; a non-zero exit also counts in the CommandFailures metric. */
function logCommand(functionName: string, command: Parsed, result: CommandResult): void {
  const line = {
    warmWebCommand: [command.target, ...command.args].join(' '),
    kind: command.kind,
    exitCode: result.exitCode,
    durationMs: result.durationMs,
    truncated: result.truncated,
  };
  const document = result.exitCode === 0 ? line : {
    _aws: {
      Timestamp: Date.now(),
      CloudWatchMetrics: [{
        Namespace: 'WarmWeb',
        Dimensions: [['FunctionName', 'CommandKind']],
        Metrics: [{ Name: 'CommandFailures', Unit: 'Count' }],
      }],
    },
    FunctionName: functionName,
    CommandKind: command.kind,
    CommandFailures: 1,
    ...line,
    Runtime: 'node',
  };
  // Straight to stdout: CloudWatch extracts metrics only from log events that are pure JSON.
  process.stdout.write(`${JSON.stringify(document)}\n`);
}

// The child process: loads path/module (CommonJS or ES module) from the task root, calls the export with
// the args, awaits it, prints a result that is not undefined. One stream for the answer: stderr joins stdout.
const CHILD = `
const [root, target, args] = JSON.parse(process.argv[1]);
process.stderr.write = process.stdout.write.bind(process.stdout);
const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');
const dot = target.lastIndexOf('.');
const base = path.resolve(root, target.slice(0, dot));
const name = target.slice(dot + 1);
(async () => {
  const file = ['', '.js', '.cjs', '.mjs'].map((ext) => base + ext).find((f) => fs.existsSync(f) && fs.statSync(f).isFile());
  if (!file) {
    throw new Error('warm-web: no module ' + target.slice(0, dot) + ' (.js, .cjs, .mjs) in ' + root);
  }
  let mod;
  try {
    mod = require(file);
  } catch (error) {
    if (error.code !== 'ERR_REQUIRE_ESM' && error.code !== 'ERR_REQUIRE_ASYNC_MODULE') throw error;
    mod = await import(pathToFileURL(file).href);
  }
  const fn = mod[name];
  if (typeof fn !== 'function') {
    throw new Error('warm-web: export "' + name + '" of ' + file + ' is not a function');
  }
  const result = await fn(args);
  if (result !== undefined) {
    let text;
    try { text = JSON.stringify(result); } catch {}
    console.log(text === undefined ? String(result) : text);
  }
})().catch((error) => {
  console.error((error && error.stack) || String(error));
  process.exitCode = 1;
});
`;
