"""Lambda entry point: INIT happens when Lambda imports this module."""
import os
import sys

from .loader import load

_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
if _root not in sys.path and os.path.isdir(_root):
    sys.path.insert(0, _root)

handler = load(os.environ.get("WARM_WEB_APP"), os.environ.get("WARM_WEB_APP_KIND")).handle
