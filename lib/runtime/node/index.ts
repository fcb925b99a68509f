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
let booting: Promise<Shim> | undefined;
/** What a load during an invoke leaves of the invoke's time, to answer with its error. */
const INVOKE_MARGIN_MS = 500;

/**
 * Loads the slim code and starts the app from it. One load at a time; a load that failed is forgotten,
 * so that the next invoke loads again (INIT succeeded, so Lambda would otherwise keep this environment
 * failing every invoke). An app that fails to start from loaded code stays failed, as without slim code.
 */
function boot(context?: Context): Promise<Shim> {
  // A load an invoke starts may take the invoke's time (less a margin to answer); the one INIT starts, INIT's budget.
  const options = context ? { deadlineMs: context.getRemainingTimeInMillis() - INVOKE_MARGIN_MS } : {};
  booting ??= slim!.materialise(process.env, options).then((dir) => (shim = start(dir)), (error: unknown) => {
    booting = undefined;
    throw error;
  });
  return booting;
}

/**
 * Resolves once the app is loaded and primed (at once unless it is slim code, an ES module that needed
 * import(), or is primed). With slim code it rejects when the first load failed; invokes load again.
 */
export const ready: Promise<void> = shim ? shim.ready : boot().then((s) => s.ready);
ready.catch(() => undefined);

export const handler = async (event: unknown, context: Context): Promise<unknown> => {
  return (shim ?? await boot(context)).handler(event, context);
};
