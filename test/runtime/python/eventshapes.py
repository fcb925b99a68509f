"""Lambda events for any request, built on the events of the shared vectors (test/vectors/), and
their answers read back."""
import base64
import copy
import json
import os
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from lambdatest import ROOT


def _vector_event(name):
    with open(os.path.join(ROOT, "test", "vectors", name + ".json"), encoding="utf-8") as f:
        return json.load(f)["event"]


# One event per source, as the vectors have it: the builders below change only the request in it.
_REST = _vector_event("requests/rest-null-multi-value")
_HTTP = _vector_event("requests/http-named-stage")
_URL = _vector_event("requests/url-basic")
_ALB = {False: _vector_event("requests/alb-single-xff-append"),
        True: _vector_event("requests/alb-multi-xff-append")}

SOURCE_IP = _REST["requestContext"]["identity"]["sourceIp"]
API_HOST = _REST["requestContext"]["domainName"]
URL_HOST = _URL["requestContext"]["domainName"]
ALB_HOST = _ALB[False]["headers"]["host"]


@dataclass
class Spec:
    """One HTTP request: path and query as a client sends them (%-encoded)."""
    method: str = "GET"
    path: str = "/"
    query: str = ""
    headers: dict = field(default_factory=dict)
    cookies: list = field(default_factory=list)
    body: bytes = b""
    binary: bool = False

    @property
    def url(self):
        return self.path + ("?" + self.query if self.query else "")


def _body(spec):
    if spec.binary:
        return base64.b64encode(spec.body).decode(), True
    return (spec.body.decode() if spec.body else None), False


def _grouped(pairs):
    grouped = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def _raw_pairs(query):
    return [tuple(p.split("=", 1)) if "=" in p else (p, "") for p in query.split("&") if p]


def _forwarded(host, client=SOURCE_IP):
    return {"host": host, "x-forwarded-proto": "https", "x-forwarded-port": "443",
            "x-forwarded-for": client, "user-agent": "tests/1.0"}


def rest_v1(spec, stage="prod", base_path=None, request_id="rest-req-1"):
    """API Gateway REST proxy event: on the execute-api domain (the stage in requestContext.path
    only) or, given ``base_path``, on a custom domain with that mapping ('' for none), which AWS
    puts in front of both path and requestContext.path."""
    path = spec.path if base_path is None else base_path + spec.path
    full = f"/{stage}{path}" if base_path is None else path
    headers = {k.title(): v for k, v in _forwarded(API_HOST).items()}
    headers.update({k.title(): v for k, v in spec.headers.items()})
    if spec.cookies:
        headers["Cookie"] = "; ".join(spec.cookies)
    query = _grouped(parse_qsl(spec.query, keep_blank_values=True))
    body, b64 = _body(spec)
    event = copy.deepcopy(_REST)
    event.update({
        "resource": "/{proxy+}", "path": path, "httpMethod": spec.method,
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": unquote(spec.path.lstrip("/"))},
        "body": body, "isBase64Encoded": b64,
    })
    event["requestContext"].update({"resourcePath": "/{proxy+}", "httpMethod": spec.method,
                                    "path": full, "stage": stage,
                                    "requestId": request_id})
    return event


def _v2(template, spec, stage, raw_path, request_id):
    host = template["requestContext"]["domainName"]
    body, b64 = _body(spec)
    event = copy.deepcopy(template)
    event.pop("cookies", None)
    event.update({
        "rawPath": raw_path, "rawQueryString": spec.query,
        "headers": {**_forwarded(host), **spec.headers},
        "queryStringParameters": {k: ",".join(v) for k, v in
                                  _grouped(parse_qsl(spec.query, keep_blank_values=True)).items()}
        or None,
        "body": body, "isBase64Encoded": b64,
    })
    event["requestContext"].update({"stage": stage, "requestId": request_id})
    event["requestContext"]["http"].update({"method": spec.method, "path": raw_path})
    if spec.cookies:
        event["cookies"] = list(spec.cookies)
    return event


def http_v2(spec, stage="$default", request_id="http-req-1"):
    """HTTP API (payload 2.0) event; HTTP API hands over rawPath already %-decoded."""
    raw_path = unquote(spec.path)
    if stage != "$default":
        raw_path = f"/{stage}{raw_path}"
    return _v2(_HTTP, spec, stage, raw_path, request_id)


def function_url(spec, request_id="url-req-1"):
    """Function URL event: payload 2.0, rawPath still %-encoded."""
    return _v2(_URL, spec, "$default", spec.path, request_id)


def alb(spec, multi, request_id="alb-req-1"):
    """ALB target-group event, with or without multi-value headers; query still URL-encoded. The
    client sent an X-Forwarded-For of its own, which the ALB appended to."""
    headers = {**_forwarded(ALB_HOST, f"198.51.100.99, {SOURCE_IP}"),
               "x-amzn-trace-id": request_id, **spec.headers}
    if spec.cookies:
        headers["cookie"] = "; ".join(spec.cookies)
    query = _grouped(_raw_pairs(spec.query))
    body, b64 = _body(spec)
    event = copy.deepcopy(_ALB[multi])
    event.update({"httpMethod": spec.method, "path": spec.path, "body": body or "",
                  "isBase64Encoded": b64})
    if multi:
        event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
        event["multiValueQueryStringParameters"] = query
    else:
        event["headers"] = headers
        event["queryStringParameters"] = {k: v[-1] for k, v in query.items()}
    return event


def alb_single_view(spec):
    """What an app can get through an ALB without multi-value headers: last value per query key."""
    last = {k: v[-1] for k, v in _grouped(_raw_pairs(spec.query)).items()}
    return Spec(spec.method, spec.path, "&".join(f"{k}={v}" for k, v in last.items()),
                spec.headers, spec.cookies, spec.body, spec.binary)


SHAPES = {
    "rest": lambda spec: rest_v1(spec, base_path=""),
    "http": http_v2,
    "url": function_url,
    "alb-multi": lambda spec: alb(spec, multi=True),
    "alb-single": lambda spec: alb(spec, multi=False),
}
HOSTS = {"rest": API_HOST, "http": API_HOST, "url": URL_HOST, "alb-multi": ALB_HOST,
         "alb-single": ALB_HOST}


@dataclass
class Answer:
    """An HTTP response read back from a shim answer or a framework's test client."""
    status: int
    headers: dict
    cookies: list
    body: bytes


def read(shape, response):
    """Check ``response`` has the keys its shape's contract names, and read it back."""
    headers, cookies = {}, []

    def add(name, value):
        name = name.lower()
        if name == "set-cookie":
            cookies.append(value)
        else:
            headers[name] = f"{headers[name]}, {value}" if name in headers else value

    if shape == "rest" or shape == "alb-multi":
        assert "headers" not in response
        for name, values in response["multiValueHeaders"].items():
            for value in values:
                add(name, value)
    else:
        assert "multiValueHeaders" not in response
        for name, value in response["headers"].items():
            assert isinstance(value, str)
            add(name, value)
    if shape in ("http", "url"):
        assert "set-cookie" not in {k.lower() for k in response["headers"]}
        cookies.extend(response["cookies"])
    if shape.startswith("alb"):
        code = response["statusCode"]
        assert response["statusDescription"].startswith(f"{code} ")
    body = response["body"]
    raw = base64.b64decode(body) if response["isBase64Encoded"] else body.encode()
    if not response["isBase64Encoded"]:
        assert "content-encoding" not in headers
    return Answer(response["statusCode"], headers, cookies, raw)
