"""ASGI lifespan at INIT: once, before requests; optional; a failed startup fails INIT."""
import json

import pytest

import fastapiapp
import rawapps
from lambdatest import FakeContext
from eventshapes import Spec, http_v2, read
from warm_web.loader import load


def get(shim, path):
    return read("http", shim.handle(http_v2(Spec(path=path)), FakeContext()))


def test_startup_runs_once_at_load_before_requests():
    startups = fastapiapp.STATS["startups"]
    requests = fastapiapp.STATS["requests"]
    shim = load("fastapiapp:app", "asgi")
    assert fastapiapp.STATS["startups"] == startups + 1
    assert fastapiapp.STATS["requests"] == requests

    for _ in range(3):
        answer = get(shim, "/lifespan")
        assert answer.status == 200
        # The lifespan state reached the requests: it was taken before any of them ran.
        assert json.loads(answer.body) == {"startups": startups + 1,
                                           "requests_at_startup": requests}
    shim.handle({"warmWeb": {"v": 1, "round": "r", "expected": 1, "holdUntilMs": 0}}, FakeContext())
    assert fastapiapp.STATS["startups"] == startups + 1


def test_app_without_lifespan_is_served(capsys):
    shim = load("rawapps:asgi_without_lifespan", "asgi")
    assert "does not support lifespan" in capsys.readouterr().err
    answer = get(shim, "/hi")
    assert (answer.status, answer.body) == (200, b"ok /hi")


def test_failed_startup_fails_load():
    with pytest.raises(RuntimeError, match="ASGI lifespan startup failed: database unreachable"):
        load("rawapps:asgi_failing_startup", "asgi")


def test_fastapi_lifespan_exception_fails_load(monkeypatch):
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    @asynccontextmanager
    async def lifespan(app):
        raise ConnectionError("cache cluster is down")
        yield

    monkeypatch.setattr(rawapps, "broken_fastapi", FastAPI(lifespan=lifespan), raising=False)
    with pytest.raises(RuntimeError, match="cache cluster is down"):
        load("rawapps:broken_fastapi", "asgi")


def test_requests_share_the_startup_loop():
    """Requests run on the loop lifespan started on, so loop-bound resources keep working."""
    import asyncio

    loops = []

    async def app(scope, receive, send):
        loops.append(asyncio.get_running_loop())
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    rawapps.loop_app = app
    try:
        shim = load("rawapps:loop_app", "asgi")
        assert get(shim, "/").status == 204
        assert get(shim, "/").status == 204
    finally:
        del rawapps.loop_app
    assert len(loops) == 3 and loops[0] is loops[1] is loops[2]
