// Entry of the Node layer (/opt/warm-web/index.js, handler /opt/warm-web/index.handler). Loading this
// module is INIT: the user's app is loaded here, not on the first request.
import { initWarnMsFrom, primePathsFrom } from './prime';
import { createShim } from './shim';

const shim = createShim({
  app: process.env.WARM_WEB_APP,
  kind: process.env.WARM_WEB_APP_KIND,
  taskRoot: process.env.LAMBDA_TASK_ROOT || '/var/task',
  functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
  prime: primePathsFrom(process.env.WARM_WEB_PRIME),
  initWarnMs: initWarnMsFrom(process.env.WARM_WEB_INIT_WARN_MS),
});

export const handler = shim.handler;
/** Resolves once the app is loaded and primed (at once unless it is an ES module that needed import(), or is primed). */
export const ready = shim.ready;
