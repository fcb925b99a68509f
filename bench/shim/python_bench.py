"""Python shim benchmark: INIT overhead (fresh processes) and per-request overhead (one process),
against the bare app and against the Lambda Web Adapter's way (the app behind a loopback server).

Usage: .venv/bin/python bench/shim/python_bench.py PYTHON...
  (the venv has test/runtime/python and bench/shim requirements; each PYTHON is an interpreter of a Lambda
  Python minor with Django, for the INIT figures; bench/shim/run.sh makes them). Prints one JSON object.
"""
import asyncio
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIM_PATH = os.path.join(ROOT, "runtime", "python")
SHIPPED_LAYER = os.path.join(ROOT, "assets", "python-shim-layer", "python")
APPS_PATH = os.path.join(ROOT, "test", "python", "apps")
sys.path[:0] = [SHIM_PATH, APPS_PATH]

INIT_RUNS = 41
WARMUP = 300
ROUNDS = 30
PER_ROUND = 100
HOST = "abc123.lambda-url.eu-west-1.on.aws"
# Each child times only its own import, so interpreter start-up is left out of both variants, and
# first loads what Lambda's Python runtime has loaded before it imports the handler. The shim
# child also times the outermost import_module call (the app's import) to print the shim's own
# share, paired within one process and so far less noisy than two medians apart.
INIT_SCRIPTS = {
    "shim": """
import importlib, json, logging, time, traceback
real, depth, app_s = importlib.import_module, [0], [0.0]

def import_module(name, package=None):
    depth[0] += 1
    t = time.perf_counter()
    try:
        return real(name, package)
    finally:
        depth[0] -= 1
        if not depth[0]:
            app_s[0] += time.perf_counter() - t

importlib.import_module = import_module
t = time.perf_counter()
import warm_web.handler
total = time.perf_counter() - t
print(total * 1000, (total - app_s[0]) * 1000)
""",
    "bare": "import importlib, json, logging, time, traceback; t = time.perf_counter(); "
            "import mysite.wsgi; "
            "print((time.perf_counter() - t) * 1000)",
}


class Context:
    function_name = "bench"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self):
        return 30_000


def event(path):
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "a=1&b=2",
        "headers": {"host": HOST, "accept": "text/plain", "user-agent": "bench/1.0",
                    "x-forwarded-proto": "https", "x-forwarded-port": "443",
                    "x-forwarded-for": "203.0.113.7", "accept-encoding": "gzip, br"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": HOST,
            "domainPrefix": "abc123", "requestId": "req-1", "routeKey": "$default",
            "stage": "$default", "time": "01/Jan/2025:00:00:00 +0000", "timeEpoch": 1735689600000,
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "bench/1.0"},
        },
        "isBase64Encoded": False,
    }


def init_env(where, layer_source):
    """A layer and a task root laid out as Lambda has them, in a fresh directory; the layer is
    ``layer_source`` (its python/ folder) as it is, the task root has no bytecode."""
    layer, task = os.path.join(where, "layer", "python"), os.path.join(where, "task")
    shutil.copytree(layer_source, layer)
    shutil.copytree(APPS_PATH, task, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "WARM_WEB", "DJANGO", "LAMBDA"))}
    env.update({
        "PYTHONPATH": os.pathsep.join([task, layer]),
        # Lambda's layer and task root are read-only: nothing is compiled to bytecode for next time.
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": task,
        "WARM_WEB_APP": "mysite.wsgi:application",
        "WARM_WEB_APP_KIND": "wsgi",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
    })
    return env


def measure_init(python, layer_source):
    """Median import times in fresh ``python`` processes, in ms: shim, bare, and the shim's own."""
    with tempfile.TemporaryDirectory() as where:
        env = init_env(where, layer_source)
        for script in INIT_SCRIPTS.values():  # unmeasured: page cache
            subprocess.run([python, "-c", script], env=env, check=True, capture_output=True)
        samples = {"shim": [], "bare": [], "own": [], "paired": []}
        for i in range(INIT_RUNS):
            # Alternate, so drift (page cache, CPU frequency) hits both variants alike.
            pair = {}
            for variant in (("shim", "bare") if i % 2 else ("bare", "shim")):
                out = subprocess.run([python, "-c", INIT_SCRIPTS[variant]], env=env,
                                     check=True, capture_output=True, text=True).stdout
                times = [float(x) for x in out.split()]
                samples[variant].append(times[0])
                pair[variant] = times[0]
                if variant == "shim":
                    samples["own"].append(times[1])
            samples["paired"].append(pair["shim"] - pair["bare"])
    return {name: statistics.median(values) for name, values in samples.items()}


def timed_rounds(variants):
    """Median over rounds of the mean time per call, in microseconds; variants alternate."""
    for call in variants.values():
        for _ in range(WARMUP):
            call()
    samples = {name: [] for name in variants}
    names = list(variants)
    for i in range(ROUNDS):
        # Rotate the order, so no variant always runs straight after the slow HTTP one.
        for name in names[i % len(names):] + names[:i % len(names)]:
            call = variants[name]
            start = time.perf_counter_ns()
            for _ in range(PER_ROUND):
                call()
            samples[name].append((time.perf_counter_ns() - start) / PER_ROUND / 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def spy_wsgi(app):
    seen = {}

    def spy(environ, start_response):
        seen["environ"] = dict(environ)
        return app(environ, start_response)
    return spy, seen


def spy_asgi(app):
    seen = {}

    async def spy(scope, receive, send):
        if scope["type"] == "http":
            seen["scope"] = dict(scope)
        await app(scope, receive, send)
    return spy, seen


def wsgi_direct(app, environ):
    def start_response(status, headers, exc_info=None):
        return None

    def call():
        result = app(dict(environ), start_response)
        b"".join(result)
        close = getattr(result, "close", None)
        if close:
            close()
    return call


def asgi_direct(app, scope):
    loop = asyncio.new_event_loop()

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    chunks = []

    def call():
        chunks.clear()
        loop.run_until_complete(app(dict(scope), receive, send))
        b"".join(chunks)
    return call


SERVERS = {
    # The Lambda Web Adapter runs the app as a plain HTTP server and proxies to it on loopback.
    "wsgiref": """
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, make_server
import mysite.wsgi

class Handler11(ServerHandler):
    http_version = "1.1"

class KeepAlive(WSGIRequestHandler):
    # wsgiref answers one HTTP/1.0 request per connection; LWA's upstream is kept alive.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def handle(self):
        self.close_connection = False
        while not self.close_connection:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline or not self.parse_request():
                return
            handler = Handler11(self.rfile, self.wfile, self.get_stderr(), self.get_environ(),
                                multithread=False)
            handler.request_handler = self
            handler.run(self.server.get_app())

    def log_message(self, *args):
        pass

server = make_server("127.0.0.1", 0, mysite.wsgi.application, handler_class=KeepAlive)
print(server.server_port, flush=True)
server.serve_forever()
""",
    "uvicorn": """
import asyncio, socket
import uvicorn
import fastapiapp

# IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so.
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(fastapiapp.app, loop="asyncio", log_level="warning", access_log=False)
asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))
""",
}


def start_server(name):
    env = {**os.environ, "PYTHONPATH": APPS_PATH}
    process = subprocess.Popen([sys.executable, "-c", SERVERS[name]], env=env,
                               stdout=subprocess.PIPE, text=True)
    port = int(process.stdout.readline())
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)


def http_call(port, path):
    connection = http.client.HTTPConnection("127.0.0.1", port)

    def call():
        connection.request("GET", path + "?a=1&b=2", headers={"Host": HOST, "Accept": "text/plain"})
        response = connection.getresponse()
        response.read()
        if response.status != 200 or response.will_close:
            raise RuntimeError(f"{response.status}, keep-alive {not response.will_close}")
    return call


def quiet_load(spec, kind):
    """Load a shim and serve its first invoke, keeping the cold-start EMF line out of our JSON."""
    from warm_web.loader import load

    shim = load(spec, kind, function_name="bench")
    stdout, sys.stdout = sys.stdout, open(os.devnull, "w")
    try:
        first = shim.handle(event("/text"), Context())
    finally:
        sys.stdout.close()
        sys.stdout = stdout
    if first["statusCode"] != 200:
        raise RuntimeError(f"unexpected shim response {first}")
    return shim


def measure_requests(framework):
    """Per-request times through the shim, direct, and over loopback HTTP, in microseconds."""
    if framework == "django":
        import mysite.wsgi as module
        spec, kind, server, spy, direct = ("mysite.wsgi:application", "wsgi", "wsgiref",
                                           spy_wsgi, wsgi_direct)
        app = module.application
    else:
        import fastapiapp as module
        spec, kind, server, spy, direct = "fastapiapp:app", "asgi", "uvicorn", spy_asgi, asgi_direct
        app = module.app
    # The direct call gets exactly the environ/scope the shim builds, caught by a spy once.
    module.bench_spy, seen = spy(app)
    try:
        quiet_load(f"{module.__name__}:bench_spy", kind)
    finally:
        del module.bench_spy
    shim, request, context = quiet_load(spec, kind), event("/text"), Context()
    process, port = start_server(server)
    try:
        times = timed_rounds({
            "shim": lambda: shim.handle(request, context),
            "direct": direct(app, seen.popitem()[1]),
            "lwa": http_call(port, "/text"),
        })
    finally:
        process.terminate()
        process.wait()
    return {
        "shimRequestMedianUs": round(times["shim"], 1),
        "directRequestMedianUs": round(times["direct"], 1),
        "requestOverheadUs": round(times["shim"] - times["direct"], 1),
        "lwaRequestUs": round(times["lwa"], 1),
        "lwaRatio": round(times["lwa"] / times["shim"], 2),
        "lwaServer": server,
    }


def measure_init_per_minor(pythons):
    """INIT figures for each interpreter: the layer as shipped (bytecode for 3.12-3.14) and the
    same layer with its sources only, as it shipped before."""
    results = {}
    with tempfile.TemporaryDirectory() as where:
        source_only = os.path.join(where, "python")
        shutil.copytree(SHIPPED_LAYER, source_only, ignore=shutil.ignore_patterns("__pycache__"))
        for python in pythons:
            version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                                     check=True, capture_output=True, text=True).stdout.strip()
            shipped, source = measure_init(python, SHIPPED_LAYER), measure_init(python, source_only)
            results[version] = {
                "initOverheadMs": round(shipped["paired"], 2),
                "initShimOwnMs": round(shipped["own"], 2),
                "sourceOnlyInitOverheadMs": round(source["paired"], 2),
                "sourceOnlyInitShimOwnMs": round(source["own"], 2),
                "initShimMedianMs": round(shipped["shim"], 2),
                "initBareMedianMs": round(shipped["bare"], 2),
            }
    return results


def main():
    started = time.monotonic()
    pythons = sys.argv[1:]
    if not pythons:
        raise SystemExit("usage: python_bench.py PYTHON... (interpreters of Lambda's Python minors, with Django)")
    init = measure_init_per_minor(pythons)
    frameworks = {name: measure_requests(name) for name in ("django", "fastapi")}
    django = frameworks["django"]
    print(json.dumps({
        "runtime": "python",
        "python": platform.python_version(),
        "initOverheadMs": max(r["initOverheadMs"] for r in init.values()),
        "initShimOwnMs": max(r["initShimOwnMs"] for r in init.values()),
        "sourceOnlyInitShimOwnMs": max(r["sourceOnlyInitShimOwnMs"] for r in init.values()),
        "requestOverheadUs": django["requestOverheadUs"],
        "lwaRequestUs": django["lwaRequestUs"],
        "lwaRatio": django["lwaRatio"],
        "init": init,
        "frameworks": frameworks,
        "raw": {
            "initRunsPerVariant": INIT_RUNS,
            "requestsPerVariant": ROUNDS * PER_ROUND,
            "durationS": round(time.monotonic() - started, 1),
        },
        "goals": {"initOverheadMs": 5, "requestOverheadUs": 100},
        "notes": {
            "init": "per Python minor (init.<version>), in fresh processes: import warm_web.handler "
                    "with WARM_WEB_APP=mysite.wsgi:application (Django) against import mysite.wsgi "
                    "bare, alternating; layer and task root laid out as Lambda has them, read-only "
                    "(PYTHONDONTWRITEBYTECODE=1), the layer as shipped (unchecked-hash bytecode for "
                    "3.12-3.14). initOverheadMs: median of the paired differences shim - bare (noisy: "
                    "two ~300 ms imports apart). initShimOwnMs: median in the shim processes of their "
                    "import time minus the app's import (the outermost import_module call), paired in "
                    "one process, an upper bound of the shim's share. sourceOnly: the same layer "
                    "without bytecode, as it shipped before. Headline figures: the worst minor",
            "shim": "handler(HTTP API v2 GET /text event, context) to formatted response",
            "direct": "the app called with the environ/scope the shim built (copied per call), "
                      "body drained",
            "lwa": "the same app behind wsgiref (made HTTP/1.1) or uvicorn on 127.0.0.1, "
                   "keep-alive http.client, body fully read; lwaRatio = lwa / shim",
            "headline": "requestOverheadUs, lwaRequestUs and lwaRatio are Django's, measured with "
                        "the benchmark's own interpreter (python)",
        },
    }))


if __name__ == "__main__":
    main()
