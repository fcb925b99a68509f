const PYTHON_DOTTED = '[A-Za-z_][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*)*';
const PYTHON_TARGET = new RegExp(`^${PYTHON_DOTTED}:${PYTHON_DOTTED}$`);
const NODE_TARGET = /^(?!\/)(?:[A-Za-z0-9_@.-]+\/)*[A-Za-z0-9_@-][A-Za-z0-9_@.-]*\.[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * A command run inside the deployed function: a Django management command, a Flask CLI command or a
 * function of the app.
 *
 * It travels as a command event (`{"warmWebCommand": {...}}`, docs/RUNTIME_CONTRACT.md) that only a
 * direct, IAM-authorized Invoke can send: an HTTP request through the Function URL or an API arrives as
 * an HTTP event and never runs a command. The same event runs migrations before a deploy moves the
 * `live` alias, scheduled commands, and `npx cdk-warm-web manage`.
 */
export class WebCommand {
  /**
   * A Django management command, as `manage.py` would run it (`DJANGO_SETTINGS_MODULE` from the
   * function's environment).
   *
   * @param args the command and its arguments, e.g. `'migrate', '--noinput'`
   */
  public static django(...args: string[]): WebCommand {
    return new WebCommand('django', checkArgs('WebCommand.django', args));
  }

  /**
   * A Flask CLI command (the app from the function's `WarmWebFunction` app spec).
   *
   * @param args the command and its arguments, e.g. `'db', 'upgrade'`
   */
  public static flask(...args: string[]): WebCommand {
    return new WebCommand('flask', checkArgs('WebCommand.flask', args));
  }

  /**
   * A function of the app, called with the arguments as a list of strings: `module:function` for Python,
   * `path/module.export` for Node. Its return value is printed; an exception fails the command.
   *
   * @param target e.g. `tasks:rebuild_index` or `jobs/cleanup.run`
   * @param args passed to the function as one list of strings
   */
  public static function(target: string, ...args: string[]): WebCommand {
    if (!PYTHON_TARGET.test(target) && !NODE_TARGET.test(target)) {
      throw new Error(`WebCommand.function: cannot parse target '${target}'; expected module:function (Python) or path/module.export (Node)`);
    }
    return new WebCommand('function', checkArgs('WebCommand.function', args), target);
  }

  /** `django`, `flask` or `function`. */
  public readonly kind: string;

  /** The command's arguments. */
  public readonly args: string[];

  /** For `function` commands, the function to call. */
  public readonly target?: string;

  private constructor(kind: string, args: string[], target?: string) {
    this.kind = kind;
    this.args = args;
    this.target = target;
  }

  /** The Invoke payload that runs this command (`{"warmWebCommand": {...}}`). */
  public toEvent(): { [key: string]: any } {
    return { warmWebCommand: { v: 1, kind: this.kind, args: [...this.args], ...(this.target ? { target: this.target } : {}) } };
  }

  /** The command as a user would type it, for logs and descriptions. */
  public toString(): string {
    const head = this.kind === 'function' ? [this.target!] : [this.kind];
    return [...head, ...this.args].join(' ');
  }
}

function checkArgs(factory: string, args: string[]): string[] {
  const bad = args.findIndex((a) => typeof a !== 'string' || a.includes('\0'));
  if (bad >= 0) {
    throw new Error(`${factory}: args[${bad}] must be a string without NUL characters, got ${JSON.stringify(args[bad])}`);
  }
  if (factory !== 'WebCommand.function' && args.length === 0) {
    throw new Error(`${factory}: give the command to run, e.g. ${factory}('${factory === 'WebCommand.django' ? 'migrate' : 'routes'}')`);
  }
  return [...args];
}
