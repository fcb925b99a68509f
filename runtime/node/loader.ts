import { statSync } from 'fs';
import { Server } from 'http';
import { createRequire } from 'module';
import * as path from 'path';
import { pathToFileURL } from 'url';
import type { LambdaHandler } from './handler';
import { type RequestListener, serverListener } from './listener';

export interface LoadOptions {
  /** `path/module.export` relative to `taskRoot` (WARM_WEB_APP). */
  readonly app: string | undefined;
  /** `handler` or `listener` (WARM_WEB_APP_KIND). */
  readonly kind: string | undefined;
  /** The code root (LAMBDA_TASK_ROOT). */
  readonly taskRoot: string;
}

export type LoadedApp =
  | { readonly kind: 'handler'; readonly fn: LambdaHandler }
  | { readonly kind: 'listener'; readonly fn: RequestListener };

// Same grammar as WebApp.nodeHandler / WebApp.nodeRequestListener accept.
const NODE_SPEC = /^(?!\/)(?:[A-Za-z0-9_@.-]+\/)*[A-Za-z0-9_@-][A-Za-z0-9_@.-]*\.[A-Za-z_$][A-Za-z0-9_$]*$/;

// The extensions Lambda's Node runtime tries, then the module part taken as a complete file name.
const EXTENSIONS = ['.js', '.mjs', '.cjs', ''];

// require() cannot load this module synchronously (ESM before Node 20.19 / 22.12, or top-level await): import() it.
const NEEDS_IMPORT = new Set(['ERR_REQUIRE_ESM', 'ERR_REQUIRE_ASYNC_MODULE']);

export class AppLoadError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'AppLoadError';
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isFile(file: string): boolean {
  return statSync(file, { throwIfNoEntry: false })?.isFile() ?? false;
}

function findModuleFile(base: string): string | undefined {
  for (const extension of EXTENSIONS) {
    if (isFile(base + extension)) {
      return base + extension;
    }
  }
  return undefined;
}

function isNamespace(exports: unknown): boolean {
  return Object.prototype.toString.call(exports) === '[object Module]';
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}

/**
 * An exported http.Server (`module.exports = http.createServer(app)`) is served through its 'request'
 * listeners, as it would be once listening; it is never made to listen.
 */
function serveServer(server: Server, kind: 'handler' | 'listener', what: string): LoadedApp {
  if (kind === 'handler') {
    throw new AppLoadError(`warm-web: ${what} is an http.Server, not a handler function (an http.Server is served with WebApp.nodeRequestListener)`);
  }
  if (server.listenerCount('request') === 0) {
    throw new AppLoadError(`warm-web: ${what} is an http.Server without a 'request' listener (create it with http.createServer(app), or export the app itself)`);
  }
  return { kind, fn: serverListener(server) };
}

/**
 * Loads the app WARM_WEB_APP names. Synchronous (so INIT is finished when the runtime asks for the
 * first event) whenever require() can load the module, which covers CommonJS and, on Node >= 20.19,
 * ES modules without top-level await; otherwise returns a promise for the import(). For a listener,
 * an unset or empty NODE_ENV becomes `production` first.
 */
export function loadApp(options: LoadOptions): LoadedApp | Promise<LoadedApp> {
  const { app, kind, taskRoot } = options;
  const describe = `WARM_WEB_APP=${JSON.stringify(app)}`;
  if (app === undefined || app === '') {
    throw new AppLoadError('warm-web: WARM_WEB_APP is not set (expected path/module.export relative to the code root, e.g. index.handler)');
  }
  if (kind !== 'handler' && kind !== 'listener') {
    throw new AppLoadError(`warm-web: WARM_WEB_APP_KIND=${JSON.stringify(kind)} (for ${describe}) must be "handler" or "listener"`);
  }
  if (!NODE_SPEC.test(app)) {
    throw new AppLoadError(`warm-web: ${describe} is not path/module.export (e.g. index.handler or src/server.app)`);
  }
  const dot = app.lastIndexOf('.');
  const modulePath = app.slice(0, dot);
  const exportName = app.slice(dot + 1);
  const base = path.resolve(taskRoot, modulePath);
  const file = findModuleFile(base);
  if (file === undefined) {
    throw new AppLoadError(`warm-web: ${describe}: no module ${modulePath} (${EXTENSIONS.filter(Boolean).join(', ')}) in ${taskRoot}`);
  }

  const resolve = (exports: unknown): LoadedApp => {
    const holder = exports as Record<string, unknown> | null | undefined;
    // `module.default` also names `module.exports` itself, unless the module is an ES module namespace.
    const wholeModule = exportName === 'default' && holder?.default === undefined && !isNamespace(exports);
    const value = wholeModule ? exports : holder?.[exportName];
    if (value === undefined) {
      throw new AppLoadError(`warm-web: ${describe}: ${file} has no export "${exportName}"`);
    }
    if (value instanceof Server) {
      return serveServer(value, kind, `${describe}: export "${exportName}" of ${file}`);
    }
    if (typeof value !== 'function') {
      throw new AppLoadError(`warm-web: ${describe}: export "${exportName}" of ${file} is ${value === null ? 'null' : typeof value}, not a function`);
    }
    // Being callable is all that can be checked before the first call; the kind says how it will be called.
    return kind === 'handler' ? { kind, fn: value as LambdaHandler } : { kind, fn: value as RequestListener };
  };
  const failed = (error: unknown): never => {
    throw new AppLoadError(`warm-web: ${describe}: loading ${file} failed: ${messageOf(error)}`, error);
  };

  if (kind === 'listener' && !process.env.NODE_ENV) {
    // Set before the app is loaded, as Express reads it when the app is created. Unset, Express
    // (finalhandler) sends stack traces to clients.
    process.env.NODE_ENV = 'production';
  }
  let exports: unknown;
  try {
    exports = createRequire(file)(file);
  } catch (error) {
    if (!NEEDS_IMPORT.has(errorCode(error) as string)) {
      failed(error);
    }
    return (import(pathToFileURL(file).href) as Promise<unknown>).then(resolve, failed);
  }
  return resolve(exports);
}
