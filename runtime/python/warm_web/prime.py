"""Priming (WARM_WEB_PRIME): GET each path through the app during INIT, answers discarded.

Imported only when WARM_WEB_PRIME is set. The requests go through the same adapter as real ones,
as HTTP API (payload 2.0) events; they never count as the environment's first invoke. Their Host is
the first entry of WARM_WEB_ALLOWED_HOSTS (a leading '.' stripped, '*' skipped), a host the app
allows when its ALLOWED_HOSTS comes from there (warm_web.django.allowed_hosts()); else ``localhost``.
"""
import json
import os
import sys
import time
from urllib.parse import unquote

HOST = "localhost"
USER_AGENT = "warm-web-prime"
# What get_remaining_time_in_millis() counts down from for a priming request.
_BUDGET_MS = 10_000


def _log(message):
    print("warm-web: " + message, file=sys.stderr, flush=True)


def host(environ=None):
    """The Host priming requests carry."""
    environ = os.environ if environ is None else environ
    for entry in (environ.get("WARM_WEB_ALLOWED_HOSTS") or "").split(","):
        entry = entry.strip()
        entry = entry[1:] if entry.startswith(".") else entry
        if entry and entry != "*":
            return entry
    return HOST


def paths(raw):
    """The paths in a WARM_WEB_PRIME value; a malformed value or entry is logged and skipped."""
    try:
        value = json.loads(raw)
    except ValueError as exc:
        _log(f"WARM_WEB_PRIME is not JSON ({exc}); not priming")
        return []
    if not isinstance(value, list):
        _log(f"WARM_WEB_PRIME must be a JSON array of paths, got {raw!r}; not priming")
        return []
    good = []
    for entry in value:
        if isinstance(entry, str) and entry.startswith("/"):
            good.append(entry)
        else:
            _log(f"WARM_WEB_PRIME entry {json.dumps(entry)} is not a path starting with '/'; "
                 "skipped")
    return good


class PrimeContext:
    """A stand-in for Lambda's context object: there is no invoke at INIT."""

    def __init__(self, n):
        env = os.environ
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = ""
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self.aws_request_id = f"warm-web-prime-{n}"
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() * 1000 + _BUDGET_MS

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline - time.monotonic() * 1000))


def event(path, n):
    """The HTTP API (payload 2.0) event for ``GET path`` (``?query`` allowed), as a client sent it."""
    raw_path, _, query = path.partition("?")
    # HTTP API hands rawPath over decoded once (docs/RUNTIME_CONTRACT.md, "Paths are decoded exactly once").
    raw_path = unquote(raw_path)
    now = time.time()
    prime_host = host()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": {
            "host": prime_host,
            "x-forwarded-proto": "https",
            "x-forwarded-port": "443",
            "user-agent": USER_AGENT,
            "x-warm-web-prime": "1",
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "warm-web-prime",
            "domainName": prime_host,
            "domainPrefix": prime_host.split(".")[0],
            "http": {"method": "GET", "path": raw_path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": USER_AGENT},
            "requestId": f"warm-web-prime-{n}",
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }


def prime(serve, prime_paths):
    """GET each path through ``serve``; log failures (exception or 5xx) and one summary line."""
    started = time.perf_counter()
    results = []
    for n, path in enumerate(prime_paths):
        try:
            status = serve(event(path, n), PrimeContext(n))["statusCode"]
        except Exception as exc:  # the adapter turns app errors into 500s; this is anything else
            import traceback
            traceback.print_exc()
            _log(f"priming GET {path} failed: {type(exc).__name__}: {exc} (not fatal)")
            status = "error"
        else:
            if status >= 500:
                _log(f"priming GET {path} failed with status {status} (not fatal)")
        results.append(f"{path} {status}")
    took = round((time.perf_counter() - started) * 1000, 1)
    _log(f"primed {len(prime_paths)} path{'' if len(prime_paths) == 1 else 's'} in {took} ms: "
         + ", ".join(results))
    return took
