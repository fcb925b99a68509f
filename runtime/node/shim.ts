import type { Context } from 'aws-lambda';
import { answerCommand, isCommand } from './command';
import { formatResponse, invalidEventResponse, recogniseEvent, type RecogniseOptions, unrecognisedEventResponse } from './events';
import { callHandler } from './handler';
import { serveRequest } from './listener';
import { type LoadedApp, loadApp, type LoadOptions } from './loader';
import { emitColdStart, emitSlowInit } from './metrics';
import { refuseForeignOrigin } from './origin';
import { DEFAULT_INIT_WARN_MS, prime } from './prime';
import { monotonicMs, round1 } from './time';
import { answerWarmPing, isWarmPing } from './warm';

export interface ShimOptions extends LoadOptions {
  /** The EMF FunctionName dimension (AWS_LAMBDA_FUNCTION_NAME). */
  readonly functionName?: string;
  /** Paths to GET through the app once it is loaded, before any invoke is served (WARM_WEB_PRIME). */
  readonly prime?: readonly string[];
  /** INIT (load and priming) longer than this logs a warning and emits SlowInit (WARM_WEB_INIT_WARN_MS). @default 8000 */
  readonly initWarnMs?: number;
  /**
   * The path prefix in front of the app's routes (a custom domain's base path mapping, an ALB rule's path),
   * removed from `req.url` when the path starts with it and reported in `req.aws.basePath`.
   * @default process.env.WARM_WEB_BASE_PATH, else none
   */
  readonly basePath?: string;
}

export interface Shim {
  /** The Lambda handler: `(event, context) => Promise<result>`. */
  readonly handler: (event: unknown, context: Context) => Promise<unknown>;
  /** Settles when INIT (load and priming) is done; rejects with the load error if the app could not be loaded. */
  readonly ready: Promise<void>;
  readonly environmentId: string;
  /** Time spent loading and priming the app, in ms; `undefined` until `ready` has resolved. */
  readonly initDurationMs: number | undefined;
}

type Invoke = (event: unknown, context: Context) => Promise<unknown>;

interface InitState {
  readonly invoke: Invoke;
  readonly initDurationMs: number;
}

/**
 * 16 random hex characters. An identifier, not a secret, so Math.random (seeded per process from OS
 * entropy) serves, and a plain handler's INIT does not pay for loading node:crypto.
 */
function newEnvironmentId(): string {
  let id = '';
  for (let i = 0; i < 4; i++) {
    id += Math.floor(Math.random() * 0x10000).toString(16).padStart(4, '0');
  }
  return id;
}

/**
 * WARM_WEB_BASE_PATH as the construct's `basePath` prop validates it: `/` then segments, no trailing `/`,
 * no `?` or `#`; unset or empty means none. Anything else fails INIT rather than silently never matching.
 */
export function basePathFrom(value: string | undefined): string | undefined {
  if (value === undefined || value === '') {
    return undefined;
  }
  if (!/^(?:\/[^/?#]+)+$/.test(value)) {
    throw new Error(`warm-web: WARM_WEB_BASE_PATH=${JSON.stringify(value)} is not a base path (WarmWebFunction basePath): it must start with "/", have no empty segment or trailing "/" and no "?" or "#" (e.g. /api or /shop/v1)`);
  }
  return value;
}

function invokerFor(app: LoadedApp, options: RecogniseOptions): Invoke {
  if (app.kind === 'handler') {
    const handler = app.fn;
    return (event, context) => callHandler(handler, event, context);
  }
  const listener = app.fn;
  return async (event, context) => {
    const recognised = recogniseEvent(event, options);
    if (recognised === undefined) {
      return unrecognisedEventResponse(event);
    }
    if ('invalid' in recognised) {
      return invalidEventResponse(recognised);
    }
    const response = await serveRequest(listener, recognised.request, event, context);
    return formatResponse(recognised.shape, response, recognised.request.method === 'HEAD');
  };
}

/**
 * Starts INIT now: creates the environment id, loads the app and primes it. Throws when the app cannot
 * be loaded synchronously (so a module importing this fails INIT with that error); when loading needs
 * import(), `ready` rejects instead and every invoke fails with the same error. Priming is asynchronous:
 * invokes wait for it (it never fails INIT).
 */
export function createShim(options: ShimOptions): Shim {
  const started = monotonicMs();
  const environmentId = newEnvironmentId();
  const functionName = options.functionName || 'unknown';
  const primePaths = options.prime ?? [];
  const initWarnMs = options.initWarnMs ?? DEFAULT_INIT_WARN_MS;
  const recogniseOptions: RecogniseOptions = { basePath: basePathFrom(options.basePath ?? process.env.WARM_WEB_BASE_PATH) };
  let state: InitState | undefined;
  let served = false;

  const initialised = (invoke: Invoke): InitState => {
    const initDurationMs = round1(monotonicMs() - started);
    if (initDurationMs > initWarnMs) {
      console.warn(`warm-web: slow INIT: ${initDurationMs} ms (load and priming) is over the WARM_WEB_INIT_WARN_MS threshold of ${initWarnMs} ms; on-demand INIT is cut off at 10 s`);
      emitSlowInit({ functionName, initDurationMs, environmentId, initWarnMs });
    }
    state = { invoke, initDurationMs };
    return state;
  };
  const booted = (app: LoadedApp): InitState | Promise<InitState> => {
    const invoke = invokerFor(app, recogniseOptions);
    if (primePaths.length === 0) {
      return initialised(invoke);
    }
    if (app.kind === 'handler') {
      console.warn('warm-web: WARM_WEB_PRIME is ignored for a plain handler (no HTTP app to prime)');
      return initialised(invoke);
    }
    return prime(invoke, primePaths, functionName).then(() => initialised(invoke));
  };
  const loaded = loadApp(options);
  let pending: Promise<InitState> | undefined;
  let ready = Promise.resolve();
  const result = loaded instanceof Promise ? loaded.then(booted) : booted(loaded);
  if (result instanceof Promise) {
    pending = result;
    ready = pending.then(() => undefined);
    // The rejection is reported by every invoke; it must not also crash the process as unhandled.
    ready.catch(() => undefined);
  }

  const handler = async (event: unknown, context: Context): Promise<unknown> => {
    const coldStart = !served;
    served = true;
    const { invoke, initDurationMs } = state ?? await (pending as Promise<InitState>);
    if (coldStart) {
      emitColdStart({ functionName, initDurationMs, environmentId });
    }
    if (isWarmPing(event)) {
      return answerWarmPing(event.warmWeb, context, { environmentId, coldStart, initDurationMs });
    }
    if (isCommand(event)) {
      return answerCommand(event.warmWebCommand, context, { taskRoot: options.taskRoot, functionName });
    }
    return refuseForeignOrigin(event) ?? invoke(event, context);
  };

  return {
    handler,
    ready,
    environmentId,
    get initDurationMs() {
      return state?.initDurationMs;
    },
  };
}
