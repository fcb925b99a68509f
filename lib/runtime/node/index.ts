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

// Slim code is fetched from S3 first (asynchronously: a CommonJS entry cannot hold INIT open for it).
// The slim loader is a file of its own in the layer, loaded only by functions that use it: the rest
// do not pay for parsing it during INIT.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const slimRoot = process.env.WARM_WEB_SLIM_KEY ? (require('./slim') as typeof Slim).materialise(process.env) : undefined;
let shim = slimRoot ? undefined : start(process.env.LAMBDA_TASK_ROOT || '/var/task');

/** Resolves once the app is loaded and primed (at once unless it is slim code, an ES module that needed import(), or is primed). */
export const ready: Promise<void> = slimRoot ? slimRoot.then((dir) => (shim = start(dir)).ready) : shim!.ready;
ready.catch(() => undefined);

export const handler = async (event: unknown, context: Context): Promise<unknown> => {
  if (!shim) await ready;
  return shim!.handler(event, context);
};
