// Entry of the Node layer (/opt/warm-web/index.js, handler /opt/warm-web/index.handler). Loading this
// module is INIT: the user's app is loaded here, not on the first request.
import type { Context } from 'aws-lambda';
import { initWarnMsFrom, primePathsFrom } from './prime';
import { createShim, Shim } from './shim';
import type * as Slim from './slim';

const start = (taskRoot: string): Shim => createShim({
  app: process.env.WARM_WEB_APP,
  kind: process.env.WARM_WEB_APP_KIND,
  taskRoot,
  functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
  prime: primePathsFrom(process.env.WARM_WEB_PRIME),
  initWarnMs: initWarnMsFrom(process.env.WARM_WEB_INIT_WARN_MS),
});

// Slim code is fetched from S3 first (asynchronously: a CommonJS entry cannot hold INIT open for it, so
// the first invoke waits for the load). The slim loader is a file of its own in the layer, loaded only
// by functions that use it: the rest do not pay for parsing it during INIT.
const slim = process.env.WARM_WEB_SLIM_KEY
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  ? (require('./slim') as typeof Slim)
  : undefined;
let shim = slim ? undefined : start(process.env.LAMBDA_TASK_ROOT || '/var/task');
let booting: { shim: Promise<Shim>; abort: AbortController } | undefined;
/** What a load leaves of the invoke's time that waits for it, to answer with its error. */
const INVOKE_MARGIN_MS = 500;

/**
 * Loads the slim code and starts the app from it. One load at a time; a load that failed is forgotten,
 * so that the next invoke loads again (INIT succeeded, so Lambda would otherwise keep this environment
 * failing every invoke). An app that fails to start from loaded code stays failed, as without slim code.
 * The load has no deadline of its own: it runs on past INIT, and the invoke that waits for it bounds it
 * (a provisioned environment may stay frozen mid-load for hours; only the invoke knows its time).
 */
function boot(): Promise<Shim> {
  if (!booting) {
    const abort = new AbortController();
    const loading = slim!.materialise(process.env, { signal: abort.signal }).then((dir) => (shim = start(dir)), (error: unknown) => {
      booting = undefined;
      throw error;
    });
    booting = { shim: loading, abort };
  }
  return booting.shim;
}

/** Waits for the load within the invoke's time: past it the load is ended and the invoke fails with why. */
async function booted(context: Context): Promise<Shim> {
  const loading = boot();
  const ms = context.getRemainingTimeInMillis() - INVOKE_MARGIN_MS;
  const { abort } = booting!;
  const timer = setTimeout(() => abort.abort(`the load did not finish within the ${ms} ms this invoke had left`), Math.max(0, ms));
  try {
    return await loading;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Resolves once the app is loaded and primed (at once unless it is slim code, an ES module that needed
 * import(), or is primed). With slim code it rejects when the first load failed; invokes load again.
 */
export const ready: Promise<void> = shim ? shim.ready : boot().then((s) => s.ready);
ready.catch(() => undefined);

export const handler = async (event: unknown, context: Context): Promise<unknown> => {
  return (shim ?? await booted(context)).handler(event, context);
};
