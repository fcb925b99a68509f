"""SnapStart runtime hooks (Python 3.12+ functions published with SnapStart).

``warm_web.handler`` registers ``before_snapshot`` and ``after_restore`` with Lambda's
``snapshot_restore_py`` module when INIT is a SnapStart one (``AWS_LAMBDA_INITIALIZATION_TYPE`` is
``snap-start``) or the runtime has already imported that module; elsewhere (on-demand, locally)
this module is never imported. They are registered before the app is imported, so Lambda runs
``before_snapshot`` after the hooks the app registers itself and ``after_restore`` before them.

Apps can add hooks that run inside the shim's own (``on_before_snapshot`` / ``on_after_restore``,
usable as decorators): they run wherever the shim's hooks run, tests included.

- before snapshot: priming has already run during INIT; the app's hooks added here run, then
  Django's database connections are closed (the snapshot must not hold sockets that restored
  environments would share; Django reconnects lazily on the next query).
- after restore: a new environment id (every environment restored from one snapshot would
  otherwise share it), ``random`` reseeded from ``os.urandom``, and the next invoke is the
  environment's cold start again, its EMF line marked ``Restore: 1``; then the app's hooks.
"""
import os
import sys

_state = {"shim": None}
_before = []
_after = []


def _log(message):
    print("warm-web: " + message, file=sys.stderr, flush=True)


def runtime_module():
    """Lambda's ``snapshot_restore_py``, or None where it is not offered (anywhere but Lambda)."""
    try:
        import snapshot_restore_py as module
    except ImportError:
        return None
    if not (callable(getattr(module, "register_before_snapshot", None))
            and callable(getattr(module, "register_after_restore", None))):
        return None
    return module


def register(shim=None, module=None):
    """Register the hooks with ``module`` (default: ``runtime_module()``); False if there is none."""
    if shim is not None:
        attach(shim)
    if module is None:
        module = runtime_module()
    if module is None:
        return False
    module.register_before_snapshot(before_snapshot)
    module.register_after_restore(after_restore)
    return True


def attach(shim):
    """The shim whose environment the hooks act on (set once INIT has built it)."""
    _state["shim"] = shim


def on_before_snapshot(hook):
    """Run ``hook()`` in the shim's before-snapshot hook, before database connections close."""
    _before.append(hook)
    return hook


def on_after_restore(hook):
    """Run ``hook()`` in the shim's after-restore hook, after the environment is renewed."""
    _after.append(hook)
    return hook


def close_django_connections():
    """Close this thread's Django database connections, when Django is set up; else nothing."""
    if "django.db" not in sys.modules:
        return
    try:
        from django.conf import settings
        if not settings.configured:
            return
        from django.db import connections
        connections.close_all()
    except Exception as exc:  # never let cleanup break the snapshot
        _log(f"closing Django database connections failed: {type(exc).__name__}: {exc}")


def before_snapshot():
    """Lambda calls this once, after INIT (priming included), before taking the snapshot."""
    shim = _state["shim"]
    wait = getattr(shim, "wait", None)
    if wait is not None:
        wait()  # async INIT (refused by the construct with SnapStart): the boot must be complete
    try:
        for hook in _before:
            hook()
    finally:
        close_django_connections()


def after_restore():
    """Lambda calls this in each environment it restores from the snapshot."""
    import random
    random.seed(os.urandom(32))
    shim = _state["shim"]
    if shim is not None:
        shim.restore(os.urandom(8).hex())
    for hook in _after:
        hook()
