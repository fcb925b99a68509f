"""Run by test_shim_bytecode.py under one Python minor: imports the shim from the layer's bytecode
(its sources replaced by code that raises) and serves a request and a warm ping through it.

Usage: python smoke.py <layer python dir> <task root>; prints one JSON line.
"""
import importlib.machinery
import json
import os
import sys
import time

layer, task = sys.argv[1], sys.argv[2]
sys.dont_write_bytecode = True  # the layer is read-only on Lambda
sys.path[:0] = [task, layer]
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


class Context:
    function_name = "smoke"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self):
        return 30_000


request = {
    "version": "2.0", "routeKey": "$default", "rawPath": "/hello", "rawQueryString": "name=caf%C3%A9",
    "headers": {"host": "smoke.lambda-url.eu-west-1.on.aws"}, "isBase64Encoded": False,
    "requestContext": {"http": {"method": "GET", "path": "/hello", "protocol": "HTTP/1.1",
                                "sourceIp": "203.0.113.7"}, "stage": "$default"},
}
response = entry.handler(request, Context())
ping = {"warmWeb": {"v": 1, "round": "r-1", "expected": 1, "holdUntilMs": time.time() * 1000 + 20}}
pong = entry.handler(ping, Context())["warmWeb"]
print(json.dumps({"tag": sys.implementation.cache_tag, "modules": len(modules),
                  "status": response["statusCode"], "body": response["body"],
                  "environmentId": pong.get("environmentId"), "heldMs": pong.get("heldMs")}))
