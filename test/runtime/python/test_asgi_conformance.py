"""ASGI adapter behaviours real apps rely on, each checked against uvicorn serving the same app."""
import http.client
import json
import os
import re
import subprocess
import sys

import pytest
import uvicorn  # noqa: F401  the reference server: missing is a failure here, never a skip

from eventshapes import SHAPES, Spec, alb, read, rest_v1
from lambdatest import HERE, FakeContext
from warm_web.loader import load

TRACEBACK = "Traceback (most recent call last)"
KEPT = "warm-web: the ASGI app raised after completing its response, which is sent:"
UVICORN_APP_ERROR = "Exception in ASGI application"
# Headers uvicorn adds to every answer; an app's answer through the shim has only its own.
SERVER_HEADERS = {"date", "server"}


class Uvicorn:
    """uvicorn serving one app on 127.0.0.1 (a free port) in its own process."""

    def __init__(self, app, lifespan="auto"):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.join(HERE, "apps"), HERE])}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "0",
             "--lifespan", lifespan, "--no-access-log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self.port = None
        self._log = []
        for line in self.process.stderr:
            self._log.append(line)
            found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found[1])
                break

    def request(self, path, headers=()):
        """GET ``path`` with ``headers`` (pairs, repeats allowed): (status, headers, body), or
        (status, headers, the exception) when the answer breaks off."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.putrequest("GET", path)
            for name, value in headers:
                connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            answer = {}
            for name, value in response.getheaders():
                name = name.lower()
                if name not in SERVER_HEADERS:
                    answer[name] = f"{answer[name]}, {value}" if name in answer else value
            try:
                body = response.read()
            except http.client.IncompleteRead as exc:
                body = exc
            return response.status, answer, body
        finally:
            connection.close()

    def stop(self):
        """Stop the server; everything it logged."""
        if self.process.poll() is None:
            self.process.terminate()
        self._log.append(self.process.communicate(timeout=60)[1])
        return "".join(self._log)


@pytest.fixture
def serve():
    """Start uvicorn with an app; every server started is stopped (by its pid) at the end."""
    servers = []

    def start(app, lifespan="auto"):
        server = Uvicorn(app, lifespan)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def through_shim(shim, shape, spec, capsys):
    """The answer for ``spec`` as ``shape``, and what the shim logged while answering."""
    capsys.readouterr()
    answer = read(shape, shim.handle(SHAPES[shape](spec), FakeContext()))
    return answer, capsys.readouterr().err


# (app, path, the app's status, the exception it re-raises after answering or None)
COMPLETED = {
    "fastapi-typed-handler": ("fastapi_app", "/teapot", 418, None),
    "fastapi-500-handler": ("fastapi_app", "/crash", 500, "ValueError: the view fell over"),
    "starlette-500-handler": ("starlette_app", "/crash", 500, "KeyError: 'no such thing'"),
    "bare-app-raises-after": ("raise_after_response", "/x", 201,
                              "RuntimeError: after-response hook failed"),
}


@pytest.mark.parametrize("case", list(COMPLETED))
def test_a_completed_response_stands_when_the_app_raises_after_it(serve, capsys, case):
    app, path, app_status, raised = COMPLETED[case]
    server = serve(f"asgiconformance:{app}")
    status, headers, body = server.request(path)
    log = server.stop()
    assert log.count(UVICORN_APP_ERROR) == (1 if raised else 0)
    if raised:
        assert raised in log
    assert status == app_status and body != b"Internal Server Error"

    shim = load(f"asgiconformance:{app}", "asgi")
    for shape in SHAPES:
        answer, err = through_shim(shim, shape, Spec(path=path), capsys)
        assert (answer.status, answer.headers, answer.body) == (status, headers, body), shape
        # The app's exception is still logged, once per request.
        assert err.count(TRACEBACK) == err.count(KEPT) == (1 if raised else 0), shape
        if raised:
            assert raised in err


def test_a_message_after_the_response_is_complete_is_an_app_error(serve, capsys):
    server = serve("asgiconformance:body_after_complete")
    status, headers, body = server.request("/x")
    log = server.stop()
    # uvicorn refuses the extra body in the app's send(); the response already sent stands.
    assert (status, body) == (200, b"whole")
    assert log.count(UVICORN_APP_ERROR) == 1
    assert "'http.response.body'" in log.split(UVICORN_APP_ERROR)[1]

    shim = load("asgiconformance:body_after_complete", "asgi")
    for shape in SHAPES:
        answer, err = through_shim(shim, shape, Spec(path="/x"), capsys)
        assert (answer.status, answer.headers, answer.body) == (status, headers, body), shape
        assert err.count(TRACEBACK) == err.count(KEPT) == 1, shape
        error = err.strip().splitlines()[-1]
        assert error == ("RuntimeError: ASGI app sent 'http.response.body' after its response "
                         "was complete"), shape


def test_a_response_broken_off_by_an_exception_is_a_500(serve, capsys):
    server = serve("asgiconformance:raise_mid_response")
    status, _, body = server.request("/x")
    log = server.stop()
    # uvicorn had sent the head and a chunk: the client is left with a body that breaks off.
    assert status == 200 and isinstance(body, http.client.IncompleteRead)
    assert log.count(UVICORN_APP_ERROR) == 1 and "RuntimeError: stream broke" in log

    # Nothing has left a Lambda function before the app returns: the client gets a clean 500.
    shim = load("asgiconformance:raise_mid_response", "asgi")
    for shape in SHAPES:
        answer, err = through_shim(shim, shape, Spec(path="/x"), capsys)
        assert (answer.status, answer.body) == (500, b"Internal Server Error"), shape
        assert err.count(TRACEBACK) == 1 and "RuntimeError: stream broke" in err
        assert KEPT not in err


def test_repeated_request_headers_reach_the_app_as_received(serve):
    server = serve("asgiconformance:echo_headers")
    status, _, body = server.request("/h", [("X-A", "1"), ("X-Other", "o"), ("X-A", "2")])
    server.stop()
    assert status == 200
    received = [pair for pair in json.loads(body) if pair[0].startswith("x-")]
    assert received == [["x-a", "1"], ["x-other", "o"], ["x-a", "2"]]

    shim = load("asgiconformance:echo_headers", "asgi")
    spec = Spec(path="/h")
    events = {"rest": rest_v1(spec), "alb-multi": alb(spec, multi=True)}
    for shape, event in events.items():
        # A multi-value event groups repeats under their name, in the order received.
        event["multiValueHeaders"].update({"X-A": ["1", "2"], "X-Other": ["o"]})
        if "headers" in event:
            event["headers"].update({"X-A": "2", "X-Other": "o"})
        answer = read(shape, shim.handle(event, FakeContext()))
        pairs = json.loads(answer.body)
        assert [p for p in pairs if p[0] == "x-a"] == [["x-a", "1"], ["x-a", "2"]], shape
        assert [p for p in pairs if p[0] == "x-other"] == [["x-other", "o"]], shape


def test_a_second_response_start_is_an_app_error(serve, capsys):
    server = serve("asgiconformance:double_start")
    status, _, body = server.request("/x")
    log = server.stop()
    # uvicorn refuses the second start in the app's send() and breaks the response off.
    assert status == 200 and isinstance(body, http.client.IncompleteRead)
    assert log.count(UVICORN_APP_ERROR) == 1
    assert "'http.response.start'" in log.split(UVICORN_APP_ERROR)[1]

    shim = load("asgiconformance:double_start", "asgi")
    for shape in SHAPES:
        answer, err = through_shim(shim, shape, Spec(path="/x"), capsys)
        assert (answer.status, answer.body) == (500, b"Internal Server Error"), shape
        assert err.count(TRACEBACK) == 1 and KEPT not in err, shape
        error = err.strip().splitlines()[-1]
        assert error.startswith("RuntimeError: ") and "'http.response.start'" in error, shape


def test_a_body_before_the_response_start_is_an_app_error(serve, capsys):
    server = serve("asgiconformance:body_before_start")
    status, _, body = server.request("/x")
    log = server.stop()
    # Nothing was sent: uvicorn answers its own 500.
    assert (status, body) == (500, b"Internal Server Error")
    assert log.count(UVICORN_APP_ERROR) == 1

    shim = load("asgiconformance:body_before_start", "asgi")
    for shape in SHAPES:
        answer, err = through_shim(shim, shape, Spec(path="/x"), capsys)
        assert (answer.status, answer.body) == (status, body), shape
        assert err.count(TRACEBACK) == 1 and KEPT not in err, shape
        assert err.strip().splitlines()[-1] == (
            "RuntimeError: ASGI app sent 'http.response.body' before 'http.response.start'"), shape


@pytest.mark.parametrize("app, sent", [("lifespan_answers_http", "http.response.start"),
                                       ("lifespan_answers_shutdown", "lifespan.shutdown.complete")])
def test_only_startup_complete_completes_lifespan_startup(serve, capsys, app, sent):
    # uvicorn with lifespan "on" (the app speaks lifespan: it answered) refuses to start.
    server = serve(f"asgiconformance:{app}", lifespan="on")
    log = server.stop()
    assert server.port is None and server.process.returncode != 0
    assert log.count("Application startup failed. Exiting.") == 1

    capsys.readouterr()
    with pytest.raises(RuntimeError) as failed:
        load(f"asgiconformance:{app}", "asgi")
    assert str(failed.value) == (
        f"ASGI lifespan startup: the app answered 'lifespan.startup' with {sent!r}; expected "
        "'lifespan.startup.complete' or 'lifespan.startup.failed'")
    assert "does not support lifespan" not in capsys.readouterr().err

