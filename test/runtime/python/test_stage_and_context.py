"""Stage and base-path prefixes become SCRIPT_NAME / root_path, and the URLs each framework builds
carry them; the raw event and context reach the app. (How each prefix is found from the event is
pinned by the shared vectors; these are the frameworks' side of it.)"""
import json

import pytest

from lambdatest import FakeContext, environ_seen
from eventshapes import API_HOST, SHAPES, Spec, alb, http_v2, read, rest_v1

WHERE = Spec(path="/where")

# framework: (app-side script name, path the app routes on, URL the app builds for itself)
EXPECTED = {
    "django": lambda prefix: (prefix, "/where", f"{prefix}/where"),
    "flask": lambda prefix: (prefix, "/where", f"{prefix}/where"),
    "fastapi": lambda prefix: (prefix, f"{prefix}/where", f"https://{API_HOST}{prefix}/where"),
}


@pytest.mark.parametrize("framework", list(EXPECTED))
@pytest.mark.parametrize("event, prefix", [
    (rest_v1(WHERE, stage="prod"), "/prod"),
    (rest_v1(WHERE, stage="prod", base_path="/api/v1"), "/api/v1"),
    (rest_v1(WHERE, stage="prod", base_path=""), ""),
    (http_v2(WHERE, stage="beta"), "/beta"),
    (http_v2(WHERE), ""),
], ids=["rest-stage", "rest-base-path", "rest-custom-domain", "http-stage", "http-default"])
def test_prefix_is_the_script_name(shims, framework, event, prefix):
    shape = "rest" if "httpMethod" in event else "http"
    answer = read(shape, shims[framework].handle(event, FakeContext()))
    assert answer.status == 200
    seen = json.loads(answer.body)
    script_name, path_info, reverse = EXPECTED[framework](prefix)
    assert seen["script_name"] == script_name
    assert seen["path_info"] == path_info
    assert seen["url"] == f"https://{API_HOST}{prefix}/where"
    assert seen["reverse"] == reverse


@pytest.mark.parametrize("event, script_name, path_info", [
    (rest_v1(Spec(path="/"), stage="prod"), "/prod", "/"),
    (http_v2(Spec(path="/"), stage="beta"), "/beta", "/"),
    # Through a custom domain the stage is not in rawPath; a path that merely starts alike stays.
    ({**http_v2(Spec(path="/x"), stage="beta"), "rawPath": "/betamax"}, "", "/betamax"),
], ids=["rest-stage-root", "http-stage-root", "http-stage-lookalike"])
def test_prefix_edges(monkeypatch, event, script_name, path_info):
    assert _seen(monkeypatch, event) == (script_name, path_info)


def _seen(monkeypatch, event):
    seen = environ_seen(monkeypatch, event)
    return seen["SCRIPT_NAME"], seen["PATH_INFO"]


@pytest.mark.parametrize("event, script_name, path_info", [
    (http_v2(Spec(path="/api/where")), "/api", "/where"),
    (http_v2(Spec(path="/api")), "/api", "/"),
    (http_v2(Spec(path="/api/where"), stage="beta"), "/beta/api", "/where"),
    (alb(Spec(path="/api/where"), multi=True), "/api", "/where"),
    (rest_v1(Spec(path="/api/where"), base_path=""), "/api", "/where"),
    # Only a whole leading segment is the base path.
    (http_v2(Spec(path="/apix/where")), "", "/apix/where"),
    (alb(Spec(path="/where"), multi=False), "", "/where"),
], ids=["http", "http-root", "http-stage", "alb", "rest-custom-domain", "lookalike", "elsewhere"])
def test_base_path_env(monkeypatch, event, script_name, path_info):
    monkeypatch.setenv("WARM_WEB_BASE_PATH", "/api")
    assert _seen(monkeypatch, event) == (script_name, path_info)


@pytest.mark.parametrize("framework", ["django", "flask", "fastapi"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_event_and_context_reach_the_app(shims, framework, shape):
    event = SHAPES[shape](Spec(path="/aws"))
    event.setdefault("requestContext", {})["requestId"] = f"id-{shape}"
    answer = read(shape, shims[framework].handle(event, FakeContext(remaining_ms=12_345)))
    assert json.loads(answer.body) == {
        "requestId": f"id-{shape}", "function": "warm-web-tests", "remaining": 12_345}
