"""Event recognition, bad events, app failures, and response encoding rules."""
import base64
import json

import pytest

import rawapps
from lambdatest import FakeContext, environ_seen
from eventshapes import SHAPES, Spec, alb, function_url, http_v2, read, rest_v1
from warm_web import events
from warm_web.loader import load

BAD_SHAPE = {"statusCode": 400, "headers": {"content-type": "text/plain; charset=utf-8"}}


@pytest.fixture(params=["wsgi", "asgi"])
def raw(request):
    spec = "rawapps:wsgi_app" if request.param == "wsgi" else "rawapps:asgi_without_lifespan"
    return load(spec, request.param)


@pytest.mark.parametrize("event, kind", [
    ({"foo": 1}, "an object"), ({"Records": []}, "an object"), ({"requestContext": {}}, "an object"),
    ({"httpMethod": "GET"}, "an object"), ({"version": "1.0", "requestContext": "x"}, "an object"),
    ([1, 2], "an array"), ("GET /", "a string"), (None, "null"), (7, "a number"),
], ids=repr)
def test_non_http_event_gets_the_cheap_400(raw, capsys, event, kind):
    before = rawapps.STATS["requests"]
    for _ in range(3):
        answer = raw.handle(event, FakeContext())
        assert {k: answer[k] for k in ("statusCode", "headers")} == BAD_SHAPE
        assert answer["body"] == ("warm-web: unrecognised event shape (expected an API Gateway REST"
                                  f" or HTTP API, Function URL or ALB event; got {kind})")
    # One debug line an event, no error line, and the app never called.
    lines = capsys.readouterr().err.splitlines()
    assert [line.startswith("warm-web: debug: not an HTTP event") for line in lines] == [True] * 3
    assert rawapps.STATS["requests"] == before


def test_recognised_shapes():
    spec = Spec(path="/x")
    assert events.recognise(rest_v1(spec)) is events.REST
    assert events.recognise(http_v2(spec)) is events.HTTP
    assert events.recognise(SHAPES["url"](spec)) is events.HTTP
    assert events.recognise(alb(spec, multi=True)) is events.ALB
    assert events.recognise(alb(spec, multi=False)) is events.ALB


def test_malformed_recognised_event_gets_400(raw):
    event = http_v2(Spec(path="/x"))
    del event["requestContext"]["http"]
    assert raw.handle(event, FakeContext())["statusCode"] == 400


@pytest.mark.parametrize("raw_value", ["api", "/api/", "/", "/a?b", "/a#b", "/a//b"])
def test_bad_base_path_fails_init_naming_it(monkeypatch, raw_value):
    monkeypatch.setenv("WARM_WEB_BASE_PATH", raw_value)
    with pytest.raises(RuntimeError) as caught:
        load("rawapps:wsgi_app", "wsgi")
    assert str(caught.value).startswith(f"WARM_WEB_BASE_PATH={raw_value!r} must start with '/'")


@pytest.mark.parametrize("shape", list(SHAPES))
def test_app_exception_is_a_500_and_the_next_request_works(raw, capsys, shape):
    answer = read(shape, raw.handle(SHAPES[shape](Spec(path="/boom")), FakeContext()))
    assert answer.status == 500
    assert answer.body == b"Internal Server Error"
    assert "RuntimeError: boom" in capsys.readouterr().err
    answer = read(shape, raw.handle(SHAPES[shape](Spec(path="/fine")), FakeContext()))
    assert (answer.status, answer.body) == (200, b"ok /fine")


def test_framework_500s_keep_serving(shims):
    for name, shim in shims.items():
        assert shim.handle(http_v2(Spec(path="/boom")), FakeContext())["statusCode"] == 500
        assert shim.handle(http_v2(Spec(path="/text")), FakeContext())["statusCode"] == 200


def _wsgi_response(headers, body):
    def app(environ, start_response):
        start_response("200 OK", headers)
        return [body]
    return app


@pytest.mark.parametrize("shape", list(SHAPES))
def test_content_encoded_bodies_go_base64(shape, monkeypatch):
    gz = b"plain ascii pretending to be gzip"
    monkeypatch.setattr(rawapps, "encoded", _wsgi_response(
        [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")], gz), raising=False)
    answer = load("rawapps:encoded", "wsgi").handle(SHAPES[shape](Spec(path="/")), FakeContext())
    assert answer["isBase64Encoded"] is True
    assert base64.b64decode(answer["body"]) == gz


@pytest.mark.parametrize("shape", list(SHAPES))
def test_repeated_headers(shape, monkeypatch):
    monkeypatch.setattr(rawapps, "repeated", _wsgi_response(
        [("Vary", "Accept"), ("Vary", "Cookie"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
         ("Set-Cookie", "c=3; Expires=Wed, 21 Oct 2037 07:28:00 GMT")], b""), raising=False)
    answer = load("rawapps:repeated", "wsgi").handle(SHAPES[shape](Spec(path="/")), FakeContext())
    got = read(shape, answer)
    assert got.headers["vary"] == "Accept, Cookie"
    cookies = ["a=1", "b=2", "c=3; Expires=Wed, 21 Oct 2037 07:28:00 GMT"]
    # A single-value ALB answer holds one value per name: the last, as ALB itself keeps.
    assert got.cookies == (cookies[-1:] if shape == "alb-single" else cookies)
    assert answer["body"] == "" and answer["isBase64Encoded"] is False
    if shape in ("rest", "alb-multi"):
        assert answer["multiValueHeaders"]["Vary"] == ["Accept", "Cookie"]


def test_request_environ_details(monkeypatch):
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        seen["body"] = environ["wsgi.input"].read()
        start_response("204 No Content", [])
        return []

    monkeypatch.setattr(rawapps, "spy", app, raising=False)
    shim = load("rawapps:spy", "wsgi")
    spec = Spec(method="PUT", path="/a%2Fb/c%C3%A9", query="x=%2F&y=1",
                headers={"content-type": "text/plain", "x_sneaky": "1",
                         "x-forwarded-proto": "http"},
                body="héllo".encode())
    shim.handle(function_url(spec), FakeContext())
    assert seen["PATH_INFO"] == "/a/b/c\xc3\xa9"
    assert seen["QUERY_STRING"] == "x=%2F&y=1"
    assert seen["CONTENT_TYPE"] == "text/plain"
    assert seen["CONTENT_LENGTH"] == "6" and seen["body"] == "héllo".encode()
    assert seen["wsgi.url_scheme"] == "http" and seen["SERVER_PORT"] == "443"
    assert seen["REMOTE_ADDR"] == "203.0.113.7"
    assert "HTTP_X_SNEAKY" not in seen
    assert seen["REQUEST_METHOD"] == "PUT"

    assert "REMOTE_USER" not in seen

    for multi in (False, True):
        seen.clear()
        # The client's own X-Forwarded-For (198.51.100.99) comes first; the ALB's entry last.
        shim.handle(alb(Spec(path="/"), multi=multi), FakeContext())
        assert seen["REMOTE_ADDR"] == "203.0.113.7"
        assert seen["SERVER_NAME"] == "lambda-846800462-eu-west-1.elb.amazonaws.com"
        # A bodiless request has no Content-Length, as under werkzeug's or gunicorn's server.
        assert "CONTENT_LENGTH" not in seen and "CONTENT_TYPE" not in seen


@pytest.mark.parametrize("shape", ["rest", "alb-multi"])
def test_repeated_request_headers_are_joined(shims, shape):
    event = SHAPES[shape](Spec(path="/echo/h", headers={"x-test": "one"}))
    headers = event["multiValueHeaders"]
    headers["Cookie" if shape == "rest" else "cookie"] = ["a=1", "b=2"]
    headers["X-Test" if shape == "rest" else "x-test"] = ["one", "two"]
    seen = json.loads(read(shape, shims["flask"].handle(event, FakeContext())).body)
    assert seen["cookies"] == [["a", "1"], ["b", "2"]]
    assert seen["x_test"] == "one,two"


def test_single_value_alb_warns_once_about_dropped_cookies(monkeypatch, capsys):
    monkeypatch.setattr(events, "_warned", [])
    monkeypatch.setattr(rawapps, "cookies", _wsgi_response(
        [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], b""), raising=False)
    shim = load("rawapps:cookies", "wsgi")
    for _ in range(3):
        answer = shim.handle(alb(Spec(path="/"), multi=False), FakeContext())
        assert answer["headers"]["set-cookie"] == "b=2"
    err = capsys.readouterr().err
    assert err.count("returns only the last Set-Cookie") == 1
    # A response with one cookie loses nothing and says nothing.
    monkeypatch.setattr(events, "_warned", [])
    monkeypatch.setattr(rawapps, "cookies", _wsgi_response([("Set-Cookie", "a=1")], b""))
    load("rawapps:cookies", "wsgi").handle(alb(Spec(path="/"), multi=False), FakeContext())
    assert "Set-Cookie" not in capsys.readouterr().err


@pytest.mark.parametrize("authorizer, user", [
    ({"principalId": "user-42"}, "user-42"),
    ({"principalId": 42}, None),
    ({"claims": {"sub": {"nested": 1}}}, None),
    ({"principalId": ""}, None),
    (None, None),
])
def test_remote_user_is_a_string_principal_or_absent(monkeypatch, authorizer, user):
    event = rest_v1(Spec(path="/me"))
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    seen = environ_seen(monkeypatch, event)
    assert seen.get("REMOTE_USER") == user and seen["PATH_INFO"] == "/me"
