"""Test helpers importable from any test module (conftest modules are not: there are several)."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))


class FakeContext:
    """Enough of Lambda's context object for the shim and the apps."""

    function_name = "warm-web-tests"
    aws_request_id = "ctx-req-1"

    def __init__(self, remaining_ms=30_000):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self):
        return self.remaining_ms


def environ_seen(monkeypatch, event):
    """The WSGI environ an app served through the shim gets for ``event``."""
    import rawapps
    from warm_web.loader import load

    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("204 No Content", [])
        return []

    monkeypatch.setattr(rawapps, "spy", app, raising=False)
    load("rawapps:spy", "wsgi").handle(event, FakeContext())
    return seen
