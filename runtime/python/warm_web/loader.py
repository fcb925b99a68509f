"""INIT: resolve WARM_WEB_APP, build the adapter, prime, and dispatch each invoke."""
import importlib
import os
import sys
import threading
import time

from . import metrics, origin

KINDS = ("wsgi", "asgi", "handler")
DEFAULT_INIT_WARN_MS = 8000


def init_warn_ms(raw=None):
    """The INIT budget in ms: WARM_WEB_INIT_WARN_MS, or 8000 when unset or not a positive number."""
    if raw is None:
        raw = os.environ.get("WARM_WEB_INIT_WARN_MS")
    if raw is None or raw == "":
        return DEFAULT_INIT_WARN_MS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        print(f"warm-web: WARM_WEB_INIT_WARN_MS={raw!r} is not a positive number of "
              f"milliseconds; using {DEFAULT_INIT_WARN_MS}", file=sys.stderr, flush=True)
        return DEFAULT_INIT_WARN_MS
    return int(value) if value.is_integer() else value


def load(app_spec, kind, function_name=None, *, started=None, prime=None, warn_ms=None):
    """Do the INIT work for ``app_spec`` of ``kind``; return the ``Shim`` that serves invokes.

    ``started`` (a ``time.perf_counter()`` value) is when INIT began, now by default. ``prime`` is
    the WARM_WEB_PRIME paths and ``warn_ms`` the INIT budget; both are read from the environment
    when not given.
    """
    if started is None:
        started = time.perf_counter()
    environment_id = os.urandom(8).hex()
    if function_name is None:
        function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
    target = _resolve(app_spec, kind)
    if kind == "handler":
        serve = target
    else:
        from .events import server
        if kind == "wsgi":
            from .wsgi import WsgiAdapter as Adapter
        else:
            from .asgi import AsgiAdapter as Adapter
        serve = server(Adapter(target))
    if prime is None:
        raw = os.environ.get("WARM_WEB_PRIME")
        if raw:
            # Imported only when priming: an INIT without it never loads the module.
            from .prime import paths
            prime = paths(raw)
    if prime:
        if kind == "handler":
            print("warm-web: WARM_WEB_PRIME is ignored for a plain handler (no HTTP app to prime)",
                  file=sys.stderr, flush=True)
        else:
            from .prime import prime as run_prime
            run_prime(serve, prime)
    init_ms = round((time.perf_counter() - started) * 1000, 3)
    _check_budget(init_ms, init_warn_ms() if warn_ms is None else warn_ms, function_name,
                  environment_id)
    return Shim(serve, environment_id, init_ms, function_name)


def _check_budget(init_ms, threshold_ms, function_name, environment_id):
    """Past the INIT budget: one warning and one SlowInit EMF line, at INIT."""
    if init_ms <= threshold_ms:
        return
    print(f"warm-web: slow INIT: {init_ms} ms (load, lifespan and priming) is over the "
          f"WARM_WEB_INIT_WARN_MS threshold of {threshold_ms:g} ms; on-demand INIT is cut off at "
          "10 s", file=sys.stderr, flush=True)
    print(metrics.slow_init_line(function_name, environment_id, init_ms, threshold_ms,
                                 int(time.time() * 1000)), flush=True)


def _resolve(spec, kind):
    """Import the module named by ``spec`` and return the callable it names."""
    if not spec:
        raise RuntimeError("WARM_WEB_APP is not set")
    where = f"WARM_WEB_APP={spec!r}"
    if kind not in KINDS:
        raise RuntimeError(f"{where}: WARM_WEB_APP_KIND={kind!r} is not one of {', '.join(KINDS)}")
    if kind == "handler":
        module_name, _, attr = spec.rpartition(".")
        form = "module.function"
    else:
        module_name, _, attr = spec.partition(":")
        form = "module:attribute"
    if not module_name or not attr:
        raise RuntimeError(f"{where} is malformed: a {kind} app is named as {form}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise RuntimeError(f"{where}: cannot import module {module_name!r}: {exc}") from exc
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise RuntimeError(f"{where}: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(target):
        raise RuntimeError(f"{where}: {attr!r} is not callable")
    return target


class Shim:
    """One environment: answers warm pings, emits the cold-start metric, serves the rest."""

    def __init__(self, serve, environment_id, init_ms, function_name):
        self.serve = serve
        self.environment_id = environment_id
        self.init_ms = init_ms
        self.function_name = function_name
        # True from a SnapStart restore until the first invoke after it has emitted its EMF line.
        self.restored = False
        self._fresh = True
        self._lock = threading.Lock()

    def restore(self, environment_id):
        """After a SnapStart restore: a new environment whose next invoke is its cold start."""
        with self._lock:
            self.environment_id = environment_id
            self.restored = True
            self._fresh = True

    def handle(self, event, context):
        """The Lambda handler."""
        cold = self._fresh and self._claim_first_invoke()
        if isinstance(event, dict) and "warmWeb" in event:
            # Imported on the first ping, not at INIT: an unwarmed cold start never needs it.
            from . import warm
            return warm.answer(event["warmWeb"], context, self.environment_id, cold, self.init_ms)
        if isinstance(event, dict) and "warmWebCommand" in event:
            from . import command
            return command.answer(event["warmWebCommand"], context)
        return origin.refuse(event) or self.serve(event, context)

    def _claim_first_invoke(self):
        # Concurrent first invokes (threads in tests) must agree on exactly one cold start.
        with self._lock:
            if not self._fresh:
                return False
            self._fresh = False
            restored = self.restored
            self.restored = False
        # The restore time is not measurable from inside (it ends before any code of ours runs):
        # a restore's line carries Restore: 1 and no InitDurationMs.
        line = metrics.cold_start_line(
            self.function_name, self.environment_id, None if restored else self.init_ms,
            int(time.time() * 1000), restore=restored)
        print(line, flush=True)
        return True
