"""Priming (WARM_WEB_PRIME): GETs through the real adapter during INIT, before the first invoke."""
import asyncio
import json
import time

import pytest

import rawapps
from lambdatest import FakeContext
from eventshapes import Spec, http_v2
from frameworks import FRAMEWORKS, requests_seen
from warm_web.loader import load
from warm_web.prime import host, paths


def _stdout_lines(captured):
    return [line for line in captured.out.splitlines() if line.strip()]


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_priming_reaches_the_app_before_the_first_invoke(framework, capsys, monkeypatch):
    spec, kind, _, _ = FRAMEWORKS[framework]
    monkeypatch.setenv("WARM_WEB_PRIME", json.dumps(["/text", "/echo/primed?x=1"]))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "prime-fn")
    before = requests_seen(framework)

    shim = load(spec, kind)

    # Both paths ran through the app during load, i.e. INIT, with no invoke yet.
    assert requests_seen(framework) == before + 2
    captured = capsys.readouterr()
    assert "primed 2 paths in " in captured.err
    assert "/text 200, /echo/primed?x=1 200" in captured.err
    # Priming is not the environment's first invoke: no cold-start line yet.
    assert _stdout_lines(captured) == []

    response = shim.handle(http_v2(Spec(path="/text")), FakeContext())
    assert response["statusCode"] == 200
    assert requests_seen(framework) == before + 3
    lines = _stdout_lines(capsys.readouterr())
    assert len(lines) == 1
    metric = json.loads(lines[0])
    assert metric["ColdStart"] == 1 and metric["FunctionName"] == "prime-fn"
    assert metric["InitDurationMs"] == shim.init_ms
    assert "Restore" not in metric

    shim.handle(http_v2(Spec(path="/text")), FakeContext())
    shim.handle({"warmWeb": {"v": 1, "round": "r", "expected": 1, "holdUntilMs": 0}},
                FakeContext())
    assert _stdout_lines(capsys.readouterr()) == []


def test_a_ping_after_priming_is_still_the_cold_start(monkeypatch, capsys):
    monkeypatch.setenv("WARM_WEB_PRIME", '["/text"]')
    shim = load("flaskapp:app", "wsgi")
    answer = shim.handle({"warmWeb": {"v": 1, "round": "r", "expected": 1, "holdUntilMs": 0}},
                         FakeContext())
    assert answer["warmWeb"]["coldStart"] is True
    assert len(_stdout_lines(capsys.readouterr())) == 1


def test_the_priming_request_as_the_app_sees_it(monkeypatch):
    seen = []

    def app(environ, start_response):
        seen.append(environ)
        start_response("204 No Content", [])
        return []

    monkeypatch.setattr(rawapps, "recording_app", app, raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "prime-fn")
    load("rawapps:recording_app", "wsgi", prime=["/a%20b", "/q?x=1&y=%2F"])

    assert [e["PATH_INFO"] for e in seen] == ["/a b", "/q"]
    first, second = seen
    assert second["QUERY_STRING"] == "x=1&y=%2F"
    assert first["REQUEST_METHOD"] == "GET"
    assert first["HTTP_HOST"] == "localhost" and first["SERVER_NAME"] == "localhost"
    assert first["wsgi.url_scheme"] == "https" and first["SERVER_PORT"] == "443"
    assert first["HTTP_X_FORWARDED_PROTO"] == "https"
    assert first["HTTP_X_WARM_WEB_PRIME"] == "1"
    assert first["HTTP_USER_AGENT"] == "warm-web-prime"
    assert first["wsgi.input"].read() == b""
    assert first["aws.event"]["version"] == "2.0"
    context = first["aws.context"]
    assert context.function_name == "prime-fn"
    assert context.aws_request_id == "warm-web-prime-0"
    assert 0 < context.get_remaining_time_in_millis() <= 10_000


def test_failing_paths_are_logged_with_status_and_not_fatal(capsys):
    before = rawapps.STATS["requests"]
    shim = load("rawapps:wsgi_app", "wsgi", prime=["/boom", "/fine"])
    assert rawapps.STATS["requests"] == before + 2
    err = capsys.readouterr().err
    assert "RuntimeError: boom" in err  # the app's traceback
    assert "priming GET /boom failed with status 500 (not fatal)" in err
    assert "/boom 500, /fine 200" in err
    assert "/fine failed" not in err
    # The environment serves normally afterwards.
    assert shim.handle(http_v2(Spec(path="/x")), FakeContext())["statusCode"] == 200


def test_a_5xx_answer_is_a_failure_too(monkeypatch, capsys):
    def app(environ, start_response):
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"not yet"]

    monkeypatch.setattr(rawapps, "unavailable_app", app, raising=False)
    load("rawapps:unavailable_app", "wsgi", prime=["/health"])
    assert "priming GET /health failed with status 503 (not fatal)" in capsys.readouterr().err


def test_an_error_outside_the_app_is_logged_not_fatal(monkeypatch, capsys):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    monkeypatch.setattr(rawapps, "ok_app", app, raising=False)

    # The adapter turns app errors into 500s; anything that still escapes serve() is caught too.
    import warm_web.events as events

    real = events.server

    def broken_server(adapter):
        serve = real(adapter)

        def wrapped(event, context):
            if context.aws_request_id.startswith("warm-web-prime"):
                raise KeyError("statusCode")
            return serve(event, context)
        return wrapped

    monkeypatch.setattr(events, "server", broken_server)
    shim = load("rawapps:ok_app", "wsgi", prime=["/x"])
    err = capsys.readouterr().err
    assert "priming GET /x failed: KeyError: 'statusCode' (not fatal)" in err
    assert "primed 1 path in " in err and "/x error" in err
    assert shim.handle(http_v2(Spec(path="/")), FakeContext())["statusCode"] == 200


def test_fastapi_failing_path_is_not_fatal(monkeypatch, capsys):
    monkeypatch.setenv("WARM_WEB_PRIME", '["/boom", "/text"]')
    before = requests_seen("fastapi")
    load("fastapiapp:app", "asgi")
    assert requests_seen("fastapi") == before + 2
    err = capsys.readouterr().err
    assert "priming GET /boom failed with status 500 (not fatal)" in err
    assert "/boom 500, /text 200" in err


def test_asgi_priming_runs_after_lifespan_startup_on_the_serving_loop(monkeypatch):
    order = []

    async def app(scope, receive, send):
        order.append((scope["type"], scope.get("path"), asyncio.get_running_loop()))
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    monkeypatch.setattr(rawapps, "lifespan_order_app", app, raising=False)
    shim = load("rawapps:lifespan_order_app", "asgi", prime=["/warm"])
    assert [(kind, path) for kind, path, _ in order] == [("lifespan", None), ("http", "/warm")]
    shim.handle(http_v2(Spec(path="/real")), FakeContext())
    assert order[2][1] == "/real"
    assert order[0][2] is order[1][2] is order[2][2]


def test_django_needs_localhost_allowed_for_priming_to_reach_views(capsys):
    """Priming sends Host: localhost; a Django site that does not allow it answers 400."""
    import logging

    from django.test.utils import override_settings

    before = requests_seen("django")
    logger = logging.getLogger("django.security.DisallowedHost")
    logger.disabled = True  # Django logs the refused host itself
    try:
        with override_settings(ALLOWED_HOSTS=["www.example.com"]):
            load("mysite.wsgi:application", "wsgi", prime=["/text"])
    finally:
        logger.disabled = False
    # The middleware ran (counter), the view did not: a 400, listed in the summary.
    assert requests_seen("django") == before + 1
    assert ": /text 400" in capsys.readouterr().err
    with override_settings(ALLOWED_HOSTS=["www.example.com", "localhost"]):
        load("mysite.wsgi:application", "wsgi", prime=["/text"])
    assert ": /text 200" in capsys.readouterr().err


def test_a_debug_false_django_site_with_hosts_from_the_helper_primes_with_200(monkeypatch, capsys):
    """ALLOWED_HOSTS from warm_web.django.allowed_hosts(): priming sends the first of them as its Host."""
    from django.test.utils import override_settings

    from warm_web.django import allowed_hosts

    monkeypatch.setenv("WARM_WEB_ALLOWED_HOSTS", ".example.com,www.example.org")
    seen = []

    def spy(environ, start_response):
        seen.append(environ["HTTP_HOST"])
        return application(environ, start_response)

    from mysite.wsgi import application

    monkeypatch.setattr(rawapps, "django_spy", spy, raising=False)
    hosts = allowed_hosts()
    assert hosts == [".example.com", "www.example.org"]
    with override_settings(DEBUG=False, ALLOWED_HOSTS=hosts):
        load("rawapps:django_spy", "wsgi", prime=["/text"])
    assert seen == ["example.com"]
    assert ": /text 200" in capsys.readouterr().err


@pytest.mark.parametrize("allowed, expected", [
    (None, "localhost"),
    ("", "localhost"),
    ("www.example.com,.cloudfront.net", "www.example.com"),
    (" .example.com , www.example.com", "example.com"),
    ("*,api.example.com", "api.example.com"),
    ("*", "localhost"),
])
def test_the_priming_host(allowed, expected):
    assert host({} if allowed is None else {"WARM_WEB_ALLOWED_HOSTS": allowed}) == expected


def test_priming_time_is_part_of_init(monkeypatch):
    def slow(environ, start_response):
        time.sleep(0.05)
        start_response("200 OK", [])
        return []

    monkeypatch.setattr(rawapps, "slow_request_app", slow, raising=False)
    assert load("rawapps:slow_request_app", "wsgi", prime=["/a", "/b"]).init_ms >= 100
    assert load("rawapps:slow_request_app", "wsgi", prime=[]).init_ms < 50


def test_plain_handler_is_not_primed(monkeypatch, capsys):
    import plainhandler

    monkeypatch.setenv("WARM_WEB_PRIME", '["/"]')
    calls = len(plainhandler.CALLS)
    load("plainhandler.handler", "handler")
    assert len(plainhandler.CALLS) == calls
    assert "WARM_WEB_PRIME is ignored for a plain handler" in capsys.readouterr().err


@pytest.mark.parametrize("raw, expected, logged", [
    ('["/", "/health"]', ["/", "/health"], None),
    ("[]", [], None),
    ("not json", [], "WARM_WEB_PRIME is not JSON"),
    ('{"path": "/"}', [], "must be a JSON array of paths"),
    ('["/ok", "relative", 3, null]', ["/ok"], 'entry "relative" is not a path'),
])
def test_prime_paths_parsing(raw, expected, logged, capsys):
    assert paths(raw) == expected
    err = capsys.readouterr().err
    if logged is None:
        assert err == ""
    else:
        assert logged in err


def test_a_malformed_prime_value_never_fails_init(monkeypatch, capsys):
    monkeypatch.setenv("WARM_WEB_PRIME", "[/oops")
    before = rawapps.STATS["requests"]
    shim = load("rawapps:wsgi_app", "wsgi")
    assert rawapps.STATS["requests"] == before
    assert "WARM_WEB_PRIME is not JSON" in capsys.readouterr().err
    assert shim.handle(http_v2(Spec(path="/x")), FakeContext())["statusCode"] == 200
