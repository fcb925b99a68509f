"""Run by test_shim_bytecode.py under one Python minor: imports the shim from the layer's bytecode
(its sources replaced by code that raises) and serves a request and a warm ping through it.

Usage: python smoke.py <layer python dir> <task root> <test/runtime/python>; prints one JSON line.
"""
import importlib.machinery
import json
import os
import sys
import time

layer, task, helpers = sys.argv[1:4]
sys.dont_write_bytecode = True  # the layer is read-only on Lambda
sys.path[:0] = [task, layer, helpers]
package = os.path.join(layer, "warm_web")

# Every module: the loader takes the shipped bytecode and never compiles the (poisoned) source.
modules = sorted(f[:-3] for f in os.listdir(package) if f.endswith(".py"))
for name in modules:
    path = os.path.join(package, name + ".py")
    code = importlib.machinery.SourceFileLoader(f"warm_web.{name}", path).get_code(f"warm_web.{name}")
    if "POISONED" in repr(code.co_consts):
        raise SystemExit(f"{sys.implementation.cache_tag}: warm_web/{name}.py was compiled from source")

os.environ.update({"WARM_WEB_APP": "smoke_app:app", "WARM_WEB_APP_KIND": "wsgi",
                   "AWS_LAMBDA_FUNCTION_NAME": "smoke", "LAMBDA_TASK_ROOT": task})
import warm_web.handler as entry  # noqa: E402
from eventshapes import Spec, function_url  # noqa: E402
from lambdatest import FakeContext  # noqa: E402

response = entry.handler(function_url(Spec(path="/hello", query="name=caf%C3%A9")), FakeContext())
ping = {"warmWeb": {"v": 1, "round": "r-1", "expected": 1, "holdUntilMs": time.time() * 1000 + 20}}
pong = entry.handler(ping, FakeContext())["warmWeb"]
print(json.dumps({"tag": sys.implementation.cache_tag, "modules": len(modules),
                  "status": response["statusCode"], "body": response["body"],
                  "environmentId": pong.get("environmentId"), "heldMs": pong.get("heldMs")}))
