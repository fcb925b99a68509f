/**
 * The language a web app is written in; it decides which runtime shim serves it.
 */
export enum WebAppLanguage {
  PYTHON = 'python',
  NODE = 'node',
}

const PYTHON_DOTTED = '[A-Za-z_][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*)*';
const PYTHON_SERVER_SPEC = new RegExp(`^${PYTHON_DOTTED}:${PYTHON_DOTTED}$`);
const PYTHON_HANDLER_SPEC = new RegExp(`^${PYTHON_DOTTED}\\.[A-Za-z_][A-Za-z0-9_]*$`);
const NODE_SPEC = /^(?!\/)(?:[A-Za-z0-9_@.-]+\/)*[A-Za-z0-9_@-][A-Za-z0-9_@.-]*\.[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * What the function runs: a WSGI or ASGI app, a Lambda handler, or a Node request listener.
 *
 * The runtime shim loads it during INIT (so provisioned concurrency and SnapStart start from a
 * booted app), answers warm pings before the app sees them, and adapts HTTP events for web apps.
 */
export class WebApp {
  /**
   * A WSGI application (Django, Flask, any PEP 3333 app), named as `module:attribute`.
   *
   * @param spec e.g. `mysite.wsgi:application` or `app:app`
   */
  public static wsgi(spec: string): WebApp {
    return new WebApp(WebAppLanguage.PYTHON, 'wsgi', checkSpec('WebApp.wsgi', spec, PYTHON_SERVER_SPEC, 'module:attribute, e.g. mysite.wsgi:application'));
  }

  /**
   * An ASGI 3 application (FastAPI, Starlette, Django's ASGI handler), named as `module:attribute`.
   * Its lifespan `startup` runs once during INIT.
   *
   * @param spec e.g. `main:app`
   */
  public static asgi(spec: string): WebApp {
    return new WebApp(WebAppLanguage.PYTHON, 'asgi', checkSpec('WebApp.asgi', spec, PYTHON_SERVER_SPEC, 'module:attribute, e.g. main:app'));
  }

  /**
   * A plain Python Lambda handler, named as Lambda names it (`module.function`). Events reach it
   * unchanged; the shim still imports it during INIT and answers warm pings.
   *
   * @param spec e.g. `app.handler`
   */
  public static pythonHandler(spec: string): WebApp {
    return new WebApp(WebAppLanguage.PYTHON, 'handler', checkSpec('WebApp.pythonHandler', spec, PYTHON_HANDLER_SPEC, 'module.function, e.g. app.handler'));
  }

  /**
   * A plain Node Lambda handler (async or callback style), named as Lambda names it
   * (`path/module.export`). Events reach it unchanged.
   *
   * @param spec e.g. `index.handler` or `dist/lambda.handler`
   */
  public static nodeHandler(spec: string): WebApp {
    return new WebApp(WebAppLanguage.NODE, 'handler', checkSpec('WebApp.nodeHandler', spec, NODE_SPEC, 'path/module.export, e.g. index.handler'));
  }

  /**
   * A Node request listener, `(req, res) => void`, as an Express, Koa (`app.callback()`) or plain
   * `http` app exports it. It receives real `http.IncomingMessage` and `http.ServerResponse` objects.
   * Use `module.default` for `module.exports = app` or `export default app`.
   *
   * @param spec e.g. `server.app` or `dist/app.default`
   */
  public static nodeRequestListener(spec: string): WebApp {
    return new WebApp(WebAppLanguage.NODE, 'listener', checkSpec('WebApp.nodeRequestListener', spec, NODE_SPEC, 'path/module.export, e.g. server.app'));
  }

  /** The language of the app. */
  public readonly language: WebAppLanguage;

  /** The app as the runtime shim reads it from `WARM_WEB_APP`. */
  public readonly spec: string;

  /** How the shim serves it (`WARM_WEB_APP_KIND`): `wsgi`, `asgi`, `handler` or `listener`. */
  public readonly kind: string;

  private constructor(language: WebAppLanguage, kind: string, spec: string) {
    this.language = language;
    this.kind = kind;
    this.spec = spec;
  }
}

function checkSpec(factory: string, spec: string, pattern: RegExp, expected: string): string {
  if (!pattern.test(spec)) {
    throw new Error(`${factory}: cannot parse app spec '${spec}'; expected ${expected}`);
  }
  return spec;
}
