"""Async INIT (WARM_WEB_ASYNC_INIT=1): boot the app on a thread, bounded INIT, first invoke waits.

Imported only when WARM_WEB_ASYNC_INIT is 1. The module import (Lambda's INIT) returns when the app
is ready or when the budget (WARM_WEB_ASYNC_INIT_BUDGET_MS, 9500 ms by default) has passed, so an
on-demand INIT never reaches Lambda's 10 s cut-off; what is left of the boot finishes inside the
first invoke, which waits for it. On-demand only: SnapStart and provisioned concurrency must
snapshot or keep a fully booted app (the construct refuses the combination).
"""
import os
import sys
import threading
import time

from .loader import load

DEFAULT_BUDGET_MS = 9500.0
# Left of an invoke's time when it gives up waiting, so its error still gets out before the timeout.
SAFETY_MS = 500


class AsyncInitError(RuntimeError):
    """The background boot failed: every invoke of this environment fails with it."""


class StillBootingError(RuntimeError):
    """The invoke ran out of time while the app was still booting; the boot goes on."""


def budget_ms(raw=None):
    """WARM_WEB_ASYNC_INIT_BUDGET_MS, or 9500 when unset or not a positive number."""
    if raw is None:
        raw = os.environ.get("WARM_WEB_ASYNC_INIT_BUDGET_MS")
    try:
        value = float(raw) if raw else DEFAULT_BUDGET_MS
    except ValueError:
        value = -1.0
    return value if 0 < value < float("inf") else DEFAULT_BUDGET_MS


def _log(message):
    print("warm-web: " + message, file=sys.stderr, flush=True)


class AsyncShim:
    """Starts the boot thread; serves invokes through the booted ``Shim`` once it is there."""

    def __init__(self, app_spec, kind, *, started=None, budget=None, **load_options):
        self.started = time.perf_counter() if started is None else started
        self.app_spec = app_spec
        self.shim = None
        self.error = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        # Set when INIT has returned: from then on a boot failure is reported by the invokes.
        self._detached = False
        self._thread = threading.Thread(
            target=self._boot, args=(app_spec, kind, load_options), name="warm-web-init",
            daemon=True)
        self._thread.start()
        budget = budget_ms() if budget is None else budget
        self._done.wait(max(0.0, budget / 1000 - (time.perf_counter() - self.started)))
        with self._lock:
            self._detached = True
            error = self.error
        if error is not None:
            # Failed inside the budget: fail INIT itself, as without async INIT, so Lambda reports
            # an INIT error and starts afresh rather than keep an environment that cannot serve.
            raise error
        if self.shim is None:
            _log(f"async INIT: {app_spec} is still booting after {budget:g} ms; INIT ends here "
                 "and the first invoke waits for the boot to finish")

    def _boot(self, app_spec, kind, load_options):
        try:
            self.shim = load(app_spec, kind, started=self.started, **load_options)
        except BaseException as exc:  # reported by INIT or by every invoke, never lost
            with self._lock:
                self.error = exc
                report = self._detached
            if report:
                import traceback
                traceback.print_exc()
                _log("async INIT failed after INIT returned; every invoke fails with: "
                     f"{exc}")
        finally:
            # Database connections the boot opened (priming) belong to this thread, which ends
            # now: close them rather than leave them to the garbage collector.
            if "django.db" in sys.modules:
                from . import snapstart
                snapstart.close_django_connections()
            self._done.set()

    @property
    def ready(self):
        """True once the boot has finished, successfully or not."""
        return self._done.is_set()

    def wait(self, timeout=None):
        """Wait for the boot; the booted ``Shim``. Raises the boot's error when it failed."""
        if not self._done.wait(timeout):
            waited = round((time.perf_counter() - self.started) * 1000)
            raise StillBootingError(
                f"warm-web: {self.app_spec} is still booting (async INIT, {waited} ms so far); "
                "this invoke ran out of time waiting for it, the boot continues")
        if self.error is not None:
            raise AsyncInitError(
                f"warm-web: INIT failed (async INIT, WARM_WEB_ASYNC_INIT=1): {self.error}"
            ) from self.error
        return self.shim

    def handle(self, event, context):
        """The Lambda handler: waits for the boot (pings too: the environment is not warm yet)."""
        shim = self.shim
        if shim is None:
            timeout = None
            remaining = getattr(context, "get_remaining_time_in_millis", None)
            if remaining is not None and not self._done.is_set():
                timeout = max(0.0, (remaining() - SAFETY_MS) / 1000)
            shim = self.wait(timeout)
        return shim.handle(event, context)

    def restore(self, environment_id):
        self.wait().restore(environment_id)
