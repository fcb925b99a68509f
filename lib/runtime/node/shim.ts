import type { Context } from 'aws-lambda';
import { formatResponse, recogniseEvent, unrecognisedEventResponse } from './events';
import { callHandler } from './handler';
import { serveRequest } from './listener';
import { type LoadedApp, loadApp, type LoadOptions } from './loader';
import { emitColdStart } from './metrics';
import { monotonicMs, round1 } from './time';
import { answerWarmPing, isWarmPing } from './warm';

export interface ShimOptions extends LoadOptions {
  /** The EMF FunctionName dimension (AWS_LAMBDA_FUNCTION_NAME). */
  readonly functionName?: string;
}

export interface Shim {
  /** The Lambda handler: `(event, context) => Promise<result>`. */
  readonly handler: (event: unknown, context: Context) => Promise<unknown>;
  /** Settles when INIT is done; rejects with the load error if the app could not be loaded. */
  readonly ready: Promise<void>;
  readonly environmentId: string;
  /** Time spent loading the app, in ms; `undefined` until `ready` has resolved. */
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

function invokerFor(app: LoadedApp): Invoke {
  if (app.kind === 'handler') {
    const handler = app.fn;
    return (event, context) => callHandler(handler, event, context);
  }
  const listener = app.fn;
  return async (event, context) => {
    const recognised = recogniseEvent(event);
    if (recognised === undefined) {
      return unrecognisedEventResponse(event);
    }
    const response = await serveRequest(listener, recognised.request, event, context);
    return formatResponse(recognised.shape, response, recognised.request.method === 'HEAD');
  };
}

/**
 * Starts INIT now: creates the environment id and loads the app. Throws when the app cannot be loaded
 * synchronously (so a module importing this fails INIT with that error); when loading needs import(),
 * `ready` rejects instead and every invoke fails with the same error.
 */
export function createShim(options: ShimOptions): Shim {
  const started = monotonicMs();
  const environmentId = newEnvironmentId();
  const functionName = options.functionName || 'unknown';
  let state: InitState | undefined;
  let served = false;

  const initialised = (app: LoadedApp): InitState => {
    state = { invoke: invokerFor(app), initDurationMs: round1(monotonicMs() - started) };
    return state;
  };
  const loaded = loadApp(options);
  let pending: Promise<InitState> | undefined;
  let ready = Promise.resolve();
  if (loaded instanceof Promise) {
    pending = loaded.then(initialised);
    ready = pending.then(() => undefined);
    // The rejection is reported by every invoke; it must not also crash the process as unhandled.
    ready.catch(() => undefined);
  } else {
    initialised(loaded);
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
    return invoke(event, context);
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
