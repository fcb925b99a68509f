"""The shared conformance vectors (test/vectors/): every request vector through the shim (WSGI and
ASGI) and, where it says what the client sent, through werkzeug's and uvicorn's own servers on
loopback; every response vector and error vector through the shim for each event source."""
import asyncio
import base64
import copy
import glob
import json
import os
import socket
import threading

import pytest
import uvicorn
from starlette.requests import Request as StarletteRequest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request as WerkzeugRequest

from lambdatest import ROOT, FakeContext
from warm_web import events
from warm_web.asgi import AsgiAdapter
from warm_web.wsgi import WsgiAdapter

VECTORS = os.path.join(ROOT, "test", "vectors")
SOURCES = ("rest", "http", "url", "alb-single", "alb-multi")


def _load(kind):
    found = sorted(glob.glob(os.path.join(VECTORS, kind, "*.json")))
    assert found, f"no {kind} vectors in {VECTORS}"
    vectors = []
    for path in found:
        with open(path, encoding="utf-8") as f:
            vector = json.load(f)
        assert vector["name"] == os.path.basename(path)[:-5], path
        vectors.append(vector)
    return vectors


REQUESTS = _load("requests")
RESPONSES = _load("responses")
ERRORS = _load("errors")


def _text(native):
    """A WSGI native string (bytes spelled as latin-1) as the text it encodes."""
    return native.encode("latin-1").decode("utf-8", "replace")


# ---- what an app sees, read the same way under the shim and under a real server ----------------

def wsgi_view(environ):
    request = WerkzeugRequest(environ)
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].lower().replace("_", "-"), _text(value)))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            # PEP 3333: an empty CONTENT_TYPE / CONTENT_LENGTH is the same as an absent one.
            headers.append((key.lower().replace("_", "-"), value))
    return {
        "method": environ["REQUEST_METHOD"],
        "scriptName": _text(environ.get("SCRIPT_NAME", "")),
        "path": _text(environ.get("PATH_INFO", "")),
        "query": environ.get("QUERY_STRING", ""),
        "queryParams": {k: request.args.getlist(k) for k in request.args},
        "headers": headers,
        "cookies": dict(request.cookies),
        "bodyBase64": base64.b64encode(request.get_data()).decode(),
        "client": environ.get("REMOTE_ADDR"),
        "scheme": environ["wsgi.url_scheme"],
        "host": environ["SERVER_NAME"],
        "port": int(environ["SERVER_PORT"]),
        "remoteUser": environ.get("REMOTE_USER"),
    }


def wsgi_echo(environ, start_response):
    body = json.dumps(wsgi_view(environ)).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


async def asgi_echo(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    request = StarletteRequest(scope)
    root = scope.get("root_path", "")
    path = scope["path"]
    raw = scope.get("raw_path")
    raw = raw.decode("latin-1") if raw is not None else None
    view = {
        "method": scope["method"],
        "scriptName": root,
        "path": path[len(root):] if root and path.startswith(root) else path,
        "rawPath": raw[len(root):] if raw is not None and root and raw.startswith(root) else raw,
        "query": scope["query_string"].decode("latin-1"),
        "queryParams": {k: request.query_params.getlist(k) for k in request.query_params},
        "headers": [(k.decode("latin-1"), v.decode("utf-8", "replace")) for k, v in scope["headers"]],
        "cookies": dict(request.cookies),
        "bodyBase64": base64.b64encode(body).decode(),
        "client": scope["client"][0] if scope.get("client") else None,
        "scheme": scope["scheme"],
        "host": scope["server"][0],
        "port": scope["server"][1],
    }
    answer = json.dumps(view).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


# ---- comparing a view with a vector's expectations -------------------------------------------

def _joined(pairs):
    """Header pairs as WSGI (CGI) can hold them: one value per name, repeats joined."""
    joined = {}
    for name, value in pairs:
        if name in joined:
            joined[name] += ("; " if name == "cookie" else ",") + value
        else:
            joined[name] = value
    return joined


def check(view, expect, kind, skip=()):
    """Every field ``expect`` names that ``kind`` ('wsgi' or 'asgi') can show, compared exactly."""
    checked = 0
    for field, want in expect.items():
        # WSGI has no raw path; ASGI no remote user (the shim passes none in the scope).
        if field in skip or (field, kind) in (("rawPath", "wsgi"), ("remoteUser", "asgi")):
            continue
        checked += 1
        if field == "headers":
            got = view["headers"]
            if kind == "wsgi":
                got, want = _joined(got), _joined(want)
                assert {k: got.get(k) for k in want} == want, field
            else:
                names = {name for name, _ in want}
                assert [p for p in map(tuple, got) if p[0] in names] == list(map(tuple, want)), field
        elif field == "headersAbsent":
            present = {name for name, _ in view["headers"]}
            assert present.isdisjoint(want), f"present: {sorted(present & set(want))}"
        else:
            assert view[field] == want, field
    assert checked, "the vector checks nothing this runner can see"


def _shim(kind, app, env, monkeypatch):
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    adapter = WsgiAdapter(app) if kind == "wsgi" else AsgiAdapter(app)
    return events.server(adapter)


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
@pytest.mark.parametrize("vector", REQUESTS, ids=[v["name"] for v in REQUESTS])
def test_request_vector_through_the_shim(monkeypatch, kind, vector):
    serve = _shim(kind, wsgi_echo if kind == "wsgi" else asgi_echo, vector.get("env"), monkeypatch)
    answer = serve(copy.deepcopy(vector["event"]), FakeContext())
    assert answer["statusCode"] == 200, answer
    body = base64.b64decode(answer["body"]) if answer["isBase64Encoded"] else answer["body"]
    check(json.loads(body), vector["expect"], kind)


# ---- the real servers -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def werkzeug_server():
    server = make_server("127.0.0.1", 0, wsgi_echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def uvicorn_server():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(asgi_echo, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.01)
        assert thread.is_alive(), "uvicorn did not start"
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join()


def send(port, client):
    """``client``'s request, byte for byte, on a new loopback connection; the echoed view back."""
    body = base64.b64decode(client.get("bodyBase64", ""))
    head = f"{client['method']} {client['target']} HTTP/1.1\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in client["headers"])
    head += "Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(head.encode() + body)
        raw = b""
        while chunk := conn.recv(65536):
            raw += chunk
    status, _, rest = raw.partition(b"\r\n")
    assert status.split()[1] == b"200", raw[:500]
    return json.loads(rest.partition(b"\r\n\r\n")[2])


# A plain server sees the request as the client sent it on the wire, with no gateway in front.
SERVER_SKIPS = ("scriptName", "client", "scheme", "host", "port", "remoteUser")
WITH_CLIENT = [v for v in REQUESTS if "client" in v]


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
@pytest.mark.parametrize("vector", WITH_CLIENT, ids=[v["name"] for v in WITH_CLIENT])
def test_request_vector_matches_a_real_server(request, kind, vector):
    port = request.getfixturevalue("werkzeug_server" if kind == "wsgi" else "uvicorn_server")
    client = vector["client"]
    view = send(port, client)
    skip = SERVER_SKIPS + tuple(vector.get("serverDiffers", ()))
    if kind == "wsgi" and sum(name.lower() == "cookie" for name, _ in client["headers"]) > 1:
        # RFC 6265 section 5.4: an HTTP/1.1 client sends one Cookie line; werkzeug joins two
        # with ',', which no cookie parser splits. (A gateway may hand over two: see the vector.)
        skip += ("cookies",)
    check(view, vector["expect"], kind, skip)


# ---- responses ----------------------------------------------------------------------------------

def template(source, method):
    """An event of ``source`` for ``method``, from that source's request vectors (``<source>-basic``
    if there is one, else the first), without its body."""
    mine = [v for v in REQUESTS if v["source"] == source]
    assert mine, f"no request vector for {source}"
    chosen = next((v for v in mine if v["name"] == f"{source}-basic"), mine[0])
    event = copy.deepcopy(chosen["event"])
    if "http" in event.get("requestContext", {}):
        event["requestContext"]["http"]["method"] = method
    else:
        event["httpMethod"] = method
    event["body"] = "" if source.startswith("alb") else None
    event["isBase64Encoded"] = False
    return event


def wsgi_app_for(spec):
    def app(environ, start_response):
        start_response(f"{spec['status']} X", [tuple(h) for h in spec["headers"]])
        return [base64.b64decode(c) for c in spec.get("chunksBase64", [spec.get("bodyBase64", "")])]
    return app


def asgi_app_for(spec):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": spec["status"],
                    "headers": [(k.encode(), v.encode()) for k, v in spec["headers"]]})
        chunks = spec.get("chunksBase64", [spec.get("bodyBase64", "")])
        for n, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": base64.b64decode(chunk),
                        "more_body": n < len(chunks) - 1})
    return app


def _lower(headers):
    lowered = {name.lower(): value for name, value in headers.items()}
    # Names differing only in case are one header to every HTTP hop: never two in an answer.
    assert len(lowered) == len(headers), sorted(headers)
    return lowered


def check_answer(answer, want):
    for key, value in want.items():
        if key == "bodyBase64":
            body = answer["body"]
            got = base64.b64decode(body) if answer["isBase64Encoded"] else body.encode()
            assert got == base64.b64decode(value), key
        elif key in ("headers", "multiValueHeaders"):
            # Header names are not case sensitive; which spelling a shim uses is not pinned.
            assert _lower(answer[key]) == _lower(value), key
            other = "multiValueHeaders" if key == "headers" else "headers"
            assert other not in answer, f"{other} next to {key}"
        else:
            assert answer[key] == value, key


RESPONSE_CASES = [(v, source) for v in RESPONSES for source in SOURCES if source in v["expect"]]


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
@pytest.mark.parametrize("vector, source", RESPONSE_CASES,
                         ids=[f"{v['name']}-{s}" for v, s in RESPONSE_CASES])
def test_response_vector(kind, vector, source):
    spec = vector["app"]
    stated = [v for k, v in spec["headers"] if k.lower() == "content-length"]
    if stated:
        # Guard the vector itself: a Content-Length it states is its body's.
        body = b"".join(map(base64.b64decode, spec.get("chunksBase64", [spec.get("bodyBase64", "")])))
        assert stated == [str(len(body))], vector["name"]
    app = (wsgi_app_for if kind == "wsgi" else asgi_app_for)(spec)
    serve = events.server((WsgiAdapter if kind == "wsgi" else AsgiAdapter)(app), base="")
    answer = serve(template(source, vector["request"]["method"]), FakeContext())
    check_answer(answer, vector["expect"][source])


# ---- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("vector", ERRORS, ids=[v["name"] for v in ERRORS])
def test_error_vector(capsys, vector):
    calls = []

    def app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b""]

    serve = events.server(WsgiAdapter(app), base="")
    answer = serve(copy.deepcopy(vector["event"]), FakeContext())
    check_answer(answer, {k: v for k, v in vector["expect"].items() if k != "body"})
    assert answer["body"] == vector["expect"]["body"]
    if vector.get("appCalled") is False:
        assert calls == []
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) <= vector.get("logLines", 1), lines
