"""Lambda entry point: INIT happens when Lambda imports this module."""
import time

_started = time.perf_counter()

import os  # noqa: E402
import sys  # noqa: E402

from .loader import load  # noqa: E402

_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
if _root not in sys.path and os.path.isdir(_root):
    sys.path.insert(0, _root)

# Slim code: the app arrives from S3 now, during INIT, and goes first on sys.path.
if os.environ.get("WARM_WEB_SLIM_KEY"):
    from .slim import materialise
    materialise(os.environ, started=_started)

_app = os.environ.get("WARM_WEB_APP")
_kind = os.environ.get("WARM_WEB_APP_KIND")

# SnapStart hooks, registered before the app is imported; the module is only imported when INIT
# is a SnapStart one (or the runtime already loaded snapshot_restore_py).
_snapstart = None
if (os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start"
        or "snapshot_restore_py" in sys.modules):
    from . import snapstart as _snapstart
    if not _snapstart.register():
        _snapstart = None

if os.environ.get("WARM_WEB_ASYNC_INIT") == "1":
    from .asyncinit import AsyncShim
    _shim = AsyncShim(_app, _kind, started=_started)
else:
    _shim = load(_app, _kind, started=_started)

if _snapstart is not None:
    _snapstart.attach(_shim)

handler = _shim.handle
