"""INIT: resolve WARM_WEB_APP, build the adapter, and dispatch each invoke."""
import importlib
import os
import threading
import time

from . import metrics

KINDS = ("wsgi", "asgi", "handler")


def load(app_spec, kind, function_name=None):
    """Do the INIT work for ``app_spec`` of ``kind``; return the ``Shim`` that serves invokes."""
    started = time.perf_counter()
    environment_id = os.urandom(8).hex()
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
    init_ms = round((time.perf_counter() - started) * 1000, 3)
    if function_name is None:
        function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
    return Shim(serve, environment_id, init_ms, function_name)


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
        self._fresh = True
        self._lock = threading.Lock()

    def handle(self, event, context):
        """The Lambda handler."""
        cold = self._fresh and self._claim_first_invoke()
        if isinstance(event, dict) and "warmWeb" in event:
            # Imported on the first ping, not at INIT: an unwarmed cold start never needs it.
            from . import warm
            return warm.answer(event["warmWeb"], context, self.environment_id, cold, self.init_ms)
        return self.serve(event, context)

    def _claim_first_invoke(self):
        # Concurrent first invokes (threads in tests) must agree on exactly one cold start.
        with self._lock:
            if not self._fresh:
                return False
            self._fresh = False
        line = metrics.cold_start_line(
            self.function_name, self.environment_id, self.init_ms, int(time.time() * 1000))
        print(line, flush=True)
        return True
