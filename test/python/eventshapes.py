"""Lambda events built the way each AWS front door builds them, and their answers read back."""
import base64
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

SOURCE_IP = "203.0.113.7"
API_HOST = "abc123.execute-api.us-east-1.amazonaws.com"
URL_HOST = "k3y5xz2mnop.lambda-url.us-east-1.on.aws"
ALB_HOST = "my-alb-1234567890.us-east-1.elb.amazonaws.com"
TARGET_GROUP = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/abc"


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


def rest_v1(spec, stage="prod", base_path=None, request_id="rest-req-1"):
    """API Gateway REST proxy event; ``base_path`` is the client's prefix ('' = custom domain)."""
    prefix = f"/{stage}" if base_path is None else base_path
    headers = {"Host": API_HOST, "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443",
               "X-Forwarded-For": SOURCE_IP, "User-Agent": "tests/1.0"}
    headers.update({k.title(): v for k, v in spec.headers.items()})
    if spec.cookies:
        headers["Cookie"] = "; ".join(spec.cookies)
    query = _grouped(parse_qsl(spec.query, keep_blank_values=True))
    body, b64 = _body(spec)
    return {
        "resource": "/{proxy+}",
        "path": spec.path,
        "httpMethod": spec.method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": spec.path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}", "httpMethod": spec.method, "path": prefix + spec.path,
            "stage": stage, "requestId": request_id, "domainName": API_HOST, "apiId": "abc123",
            "identity": {"sourceIp": SOURCE_IP, "userAgent": "tests/1.0"},
        },
        "body": body,
        "isBase64Encoded": b64,
    }


def http_v2(spec, stage="$default", host=API_HOST, decoded_path=True, request_id="http-req-1"):
    """HTTP API (payload 2.0) event; HTTP API hands over rawPath already %-decoded."""
    raw_path = unquote(spec.path) if decoded_path else spec.path
    if stage != "$default":
        raw_path = f"/{stage}{raw_path}"
    headers = {"host": host, "x-forwarded-proto": "https", "x-forwarded-port": "443",
               "x-forwarded-for": SOURCE_IP, "user-agent": "tests/1.0", **spec.headers}
    body, b64 = _body(spec)
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": spec.query,
        "headers": headers,
        "queryStringParameters": {k: ",".join(v) for k, v in
                                  _grouped(parse_qsl(spec.query, keep_blank_values=True)).items()}
        or None,
        "requestContext": {
            "accountId": "123456789012", "apiId": host.split(".")[0], "domainName": host,
            "domainPrefix": host.split(".")[0], "requestId": request_id, "routeKey": "$default",
            "stage": stage, "time": "23/Nov/2025:20:00:00 +0000", "timeEpoch": 1763928000000,
            "http": {"method": spec.method, "path": raw_path, "protocol": "HTTP/1.1",
                     "sourceIp": SOURCE_IP, "userAgent": "tests/1.0"},
        },
        "body": body,
        "isBase64Encoded": b64,
    }
    if spec.cookies:
        event["cookies"] = list(spec.cookies)
    return event


def function_url(spec, request_id="url-req-1"):
    """Function URL event: payload 2.0, rawPath still %-encoded."""
    return http_v2(spec, host=URL_HOST, decoded_path=False, request_id=request_id)


def alb(spec, multi, request_id="alb-req-1"):
    """ALB target-group event, with or without multi-value headers; query still URL-encoded."""
    headers = {"host": ALB_HOST, "x-forwarded-proto": "https", "x-forwarded-port": "443",
               "x-forwarded-for": f"{SOURCE_IP}, 10.0.0.1", "x-amzn-trace-id": request_id,
               "user-agent": "tests/1.0", **spec.headers}
    if spec.cookies:
        headers["cookie"] = "; ".join(spec.cookies)
    query = _grouped(_raw_pairs(spec.query))
    body, b64 = _body(spec)
    event = {
        "requestContext": {"elb": {"targetGroupArn": TARGET_GROUP}},
        "httpMethod": spec.method,
        "path": spec.path,
        "body": body or "",
        "isBase64Encoded": b64,
    }
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
