"""Runs warm_web.handler in a fresh interpreter, as Lambda imports it, and invokes it."""
import json
import os
import subprocess
import sys

from lambdatest import HERE, ROOT

SCRIPT = r"""
import json, sys, time
spec = json.loads(sys.stdin.read())
exec(spec["preamble"])
t0 = time.perf_counter()
import warm_web.handler as entry
print("IMPORTED " + json.dumps({"ms": (time.perf_counter() - t0) * 1000,
                                "ready": getattr(entry._shim, "ready", True),
                                "modules": sorted(m for m in ("warm_web.prime", "warm_web.asyncinit",
                                                              "warm_web.snapstart", "asyncio")
                                                  if m in sys.modules)}), flush=True)
exec(spec["before"])

class Context:
    function_name = "e2e-fn"
    aws_request_id = "req"
    def get_remaining_time_in_millis(self):
        return spec["remaining_ms"]

for event in spec["events"]:
    if event == "CALL":
        exec(spec["call"])
        continue
    started = time.perf_counter()
    try:
        result = entry.handler(event, Context())
    except Exception as exc:
        print("ERROR " + json.dumps({"type": type(exc).__name__, "message": str(exc),
                                     "ms": (time.perf_counter() - started) * 1000}), flush=True)
    else:
        print("RESULT " + json.dumps({"result": result, "ms": (time.perf_counter() - started) * 1000}),
              flush=True)
"""


class Run:
    def __init__(self, completed):
        self.returncode = completed.returncode
        self.stderr = completed.stderr
        self.stdout = completed.stdout
        self.imported = None
        self.results = []  # ("RESULT", {...}) or ("ERROR", {...})
        self.emf = []
        self.other = []
        for line in completed.stdout.splitlines():
            tag, _, rest = line.partition(" ")
            if tag == "IMPORTED":
                self.imported = json.loads(rest)
            elif tag in ("RESULT", "ERROR"):
                self.results.append((tag, json.loads(rest)))
            elif line.startswith("{"):
                self.emf.append(json.loads(line))
            elif line.strip():
                self.other.append(line)


def run(app, kind, events, env=None, task_root=None, remaining_ms=30_000, before="", call="",
        pythonpath=(), preamble=""):
    """Import the handler with WARM_WEB_APP=app and invoke it once per event.

    ``preamble`` runs before the import, ``before`` after it; a "CALL" event runs ``call``.
    """
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("WARM_WEB", "DJANGO", "AWS_LAMBDA"))}
    environ.update({
        "WARM_WEB_APP": app, "WARM_WEB_APP_KIND": kind, "AWS_LAMBDA_FUNCTION_NAME": "e2e-fn",
        "LAMBDA_TASK_ROOT": str(task_root or os.path.join(HERE, "apps")),
        "PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "runtime", "python"),
                                       os.path.join(HERE, "apps"), *map(str, pythonpath)]),
        **(env or {}),
    })
    spec = {"events": events, "remaining_ms": remaining_ms, "before": before, "call": call,
            "preamble": preamble}
    completed = subprocess.run([sys.executable, "-c", SCRIPT], input=json.dumps(spec), env=environ,
                               capture_output=True, text=True, timeout=60)
    return Run(completed)
