"""The origin secret: with WARM_WEB_ORIGIN_SECRET set, only HTTP events carrying the header CloudFront
adds reach the app, and the header itself never does. Through the real shim and a real Flask app."""
import json
import os

import pytest

from eventshapes import SHAPES, Spec, function_url, read
from lambdatest import ROOT, FakeContext, environ_seen
from shimprocess import run
from warm_web import origin
from warm_web.loader import load

SECRET = "Zq8sV0cRk2mW7tYp4LxN9bHf3JdG6aEu"
FORM = Spec("POST", "/echo/contact", headers={
    "content-type": "application/x-www-form-urlencoded",
    "x-forwarded-host": "www.example.com",
    "origin": "https://www.example.com",
}, body=b"name=Ada&csrfmiddlewaretoken=t0k3n")


def with_origin(spec, value, name="x-warm-web-origin"):
    return Spec(spec.method, spec.path, spec.query, {**spec.headers, name: value}, spec.cookies,
                spec.body, spec.binary)


@pytest.fixture(scope="module")
def flask_shim():
    return load("flaskapp:app", "wsgi")


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv("WARM_WEB_ORIGIN_SECRET", SECRET)


def requests_served():
    from flaskapp import STATS
    return STATS["requests"]


@pytest.mark.parametrize("shape", SHAPES)
def test_missing_header_is_refused_without_calling_the_app(flask_shim, shape):
    before = requests_served()
    answer = flask_shim.handle(SHAPES[shape](FORM), FakeContext())
    assert answer["statusCode"] == 403
    assert answer["body"] == "Forbidden"
    assert requests_served() == before


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("value", ["wrong", SECRET[:-1], SECRET + "x", "", "é" * 32])
def test_wrong_header_is_refused_without_calling_the_app(flask_shim, shape, value):
    before = requests_served()
    answer = flask_shim.handle(SHAPES[shape](with_origin(FORM, value)), FakeContext())
    assert answer["statusCode"] == 403
    assert requests_served() == before


@pytest.mark.parametrize("shape", SHAPES)
def test_right_header_lets_the_app_answer_the_form_post(flask_shim, shape):
    before = requests_served()
    answer = read(shape, flask_shim.handle(SHAPES[shape](with_origin(FORM, SECRET, "X-Warm-Web-Origin")),
                                           FakeContext()))
    assert answer.status == 200
    assert requests_served() == before + 1
    body = json.loads(answer.body)
    assert body["method"] == "POST"
    assert body["form"] == [["name", "Ada"], ["csrfmiddlewaretoken", "t0k3n"]]


@pytest.mark.parametrize("shape", SHAPES)
def test_the_app_never_sees_the_header(monkeypatch, shape):
    environ = environ_seen(monkeypatch, SHAPES[shape](with_origin(FORM, SECRET)))
    assert environ["REQUEST_METHOD"] == "POST"
    assert "HTTP_X_WARM_WEB_ORIGIN" not in environ
    assert environ["HTTP_X_FORWARDED_HOST"] == "www.example.com"
    assert environ["HTTP_ORIGIN"] == "https://www.example.com"


def test_a_joined_double_header_is_refused():
    event = SHAPES["url"](with_origin(FORM, f"{SECRET},{SECRET}"))
    assert origin.refuse(event, SECRET)["statusCode"] == 403


def test_alb_multi_value_event_is_refused_in_its_own_shape():
    assert origin.refuse(SHAPES["alb-multi"](FORM), SECRET) == {
        "statusCode": 403, "statusDescription": "403 Forbidden",
        "multiValueHeaders": {"content-type": ["text/plain; charset=utf-8"]},
        "body": "Forbidden", "isBase64Encoded": False}


def test_warm_pings_and_other_events_are_not_checked(flask_shim):
    ping = flask_shim.handle({"warmWeb": {"v": 1, "round": "r1", "expected": 1, "holdUntilMs": 0}},
                             FakeContext())
    assert "warmWeb" in ping
    assert origin.refuse({"Records": [{"eventSource": "aws:sqs"}]}, SECRET) is None
    assert origin.refuse({"warmWebCommand": {"v": 1, "kind": "django", "args": ["migrate"]}}, SECRET) is None


def test_a_plain_handler_is_guarded_too():
    from plainhandler import CALLS
    shim = load("plainhandler.handler", "handler")
    before = len(CALLS)
    assert shim.handle(SHAPES["url"](FORM), FakeContext())["statusCode"] == 403
    assert len(CALLS) == before
    assert shim.handle(SHAPES["url"](with_origin(FORM, SECRET)), FakeContext()) == {"handled": True}
    assert "x-warm-web-origin" not in CALLS[-1][0]["headers"]


def test_without_the_secret_every_request_reaches_the_app(monkeypatch):
    monkeypatch.delenv("WARM_WEB_ORIGIN_SECRET")
    environ = environ_seen(monkeypatch, SHAPES["url"](with_origin(FORM, "anything")))
    assert environ["HTTP_X_WARM_WEB_ORIGIN"] == "anything"


def test_the_django_example_behind_the_distribution():
    """examples/django with the environment WebDistribution gives it (no custom domain), in its own
    interpreter: CloudFront's requests are served for the viewer's host, nothing else is."""
    viewer = "d111abcdef8.cloudfront.net"

    def get(headers):
        return function_url(Spec("GET", "/health", headers=headers))

    env = {"WARM_WEB_ORIGIN_SECRET": SECRET, "WARM_WEB_ALLOWED_HOSTS": ".cloudfront.net",
           "WARM_WEB_CSRF_TRUSTED_ORIGINS": "https://*.cloudfront.net",
           "DJANGO_SETTINGS_MODULE": "mysite.settings"}
    result = run("mysite.wsgi:application", "wsgi", [
        get({"x-warm-web-origin": SECRET, "x-forwarded-host": viewer}),
        get({"x-forwarded-host": viewer}),
        get({"x-warm-web-origin": SECRET, "x-forwarded-host": "www.evil.example"}),
        get({"x-warm-web-origin": SECRET}),
    ], env=env, task_root=os.path.join(ROOT, "examples", "django", "app"))
    assert result.returncode == 0, result.stderr
    statuses = [answer["result"]["statusCode"] for _, answer in result.results]
    # Through CloudFront; straight to the URL; a host that is not ours; the Function URL's own host.
    assert statuses == [200, 403, 400, 400]
    assert json.loads(result.results[0][1]["result"]["body"]) == {"ok": True}
