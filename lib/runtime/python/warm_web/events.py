"""Event shapes (API Gateway REST and HTTP API, Function URL, ALB): requests in, responses out."""
import sys
from base64 import b64decode, b64encode
from http import HTTPStatus
from urllib.parse import quote

_PLAIN = "text/plain; charset=utf-8"


class Request:
    """An HTTP request taken out of an event. Paths are as the event had them, maybe %-encoded.

    ``header_list`` is the headers as received: ``(lower-case name, value)`` pairs, repeats kept in
    order (ASGI passes them on so); ``headers`` joins repeats into one value per name (WSGI/CGI).
    """

    __slots__ = ("method", "script_name", "path", "query", "header_list", "headers", "body",
                 "scheme", "host", "port", "client")

    def __init__(self, event, method, script_name, path, query, header_list, client):
        body = event.get("body") or ""
        body = b64decode(body) if event.get("isBase64Encoded") else body.encode()
        headers = _joined(header_list)
        # A real server hands on Content-Length only when the client sent it; a Lambda body is
        # whole, so its length is known and stated when there is one.
        if body and "content-length" not in headers:
            headers["content-length"] = str(len(body))
            header_list.append(("content-length", headers["content-length"]))
        scheme = headers.get("x-forwarded-proto", "https")
        host = headers.get("host")
        if host is None:
            host = headers["host"] = event["requestContext"].get("domainName", "localhost")
            header_list.append(("host", host))
        name, colon, port = host.rpartition(":")
        if colon and port.isdigit():
            host = name
        else:
            port = "443" if scheme == "https" else "80"
        if client is None and "x-forwarded-for" in headers:
            client = headers["x-forwarded-for"].partition(",")[0].strip()
        self.method = method
        self.script_name = script_name
        self.path = path
        self.query = query
        self.header_list = header_list
        self.headers = headers
        self.body = body
        self.scheme = scheme
        self.host = host
        self.port = headers.get("x-forwarded-port", port)
        self.client = client


def _header_list(event):
    """Request headers as ``[(lower name, value)]``, multi-value headers expanded in order."""
    multi = event.get("multiValueHeaders")
    if multi:
        return [(name.lower(), value) for name, values in multi.items() for value in values or ()]
    return [(name.lower(), value) for name, value in (event.get("headers") or {}).items()]


def _joined(header_list):
    """``{lower name: value}``, repeated values joined as RFC 9110 allows (cookies with '; ')."""
    joined = {}
    for name, value in header_list:
        if name in joined:
            joined[name] += ("; " if name == "cookie" else ", ") + value
        else:
            joined[name] = value
    return joined


def _query(event, encode):
    """The query string from (multi-value) query parameters, each value %-encoded if ``encode``."""
    params = event.get("multiValueQueryStringParameters")
    if params is None:
        params = {k: [v] for k, v in (event.get("queryStringParameters") or {}).items()}
    if encode:
        return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}"
                        for k, values in params.items() for v in values)
    return "&".join(f"{k}={v}" for k, values in params.items() for v in values)


def _rest_request(event):
    context = event["requestContext"]
    path = event.get("path") or "/"
    # Stage or base-path mapping: requestContext.path is the path the client asked for.
    full = context.get("path") or path
    if full.endswith(path):
        script = full[:len(full) - len(path)]
    else:
        script = full if path == "/" else ""
    # API Gateway REST hands query values over decoded: encode them again.
    query = _query(event, True)
    client = (context.get("identity") or {}).get("sourceIp")
    return Request(event, event["httpMethod"], script.rstrip("/"), path, query,
                   _header_list(event), client)


def _http_request(event):
    context = event["requestContext"]
    http = context["http"]
    path = event.get("rawPath") or "/"
    script = ""
    stage = context.get("stage")
    if stage and stage != "$default":
        prefix = "/" + stage
        if path.startswith(prefix) and path[len(prefix):len(prefix) + 1] in ("", "/"):
            script, path = prefix, path[len(prefix):] or "/"
    headers = _header_list(event)
    cookies = event.get("cookies")
    if cookies:
        # Payload 2.0 moves the Cookie header's parts into ``cookies``: put them back as one.
        headers.append(("cookie", "; ".join(cookies)))
    return Request(event, http["method"], script, path, event.get("rawQueryString") or "", headers,
                   http.get("sourceIp"))


def _alb_request(event):
    # ALB hands query keys and values over still URL-encoded: join them as they are.
    return Request(event, event["httpMethod"], "", event.get("path") or "/", _query(event, False),
                   _header_list(event), None)


def _response_headers(headers, multi):
    """Response headers: ``{name: [values]}`` with Set-Cookie in them when ``multi``, else
    ``{lower name: joined values}`` and the Set-Cookie values apart; and whether content-encoded."""
    out, cookies, encoded = {}, [], False
    for name, value in headers:
        lower = name.lower()
        if lower == "set-cookie":
            # WSGI servers write "Set-Cookie: " + value; Django's values start with a space.
            value = value.strip()
            if not multi:
                cookies.append(value)
                continue
        elif lower == "content-encoding":
            encoded = True
        if multi:
            if name in out:
                out[name].append(value)
            else:
                out[name] = [value]
        else:
            out[lower] = out[lower] + ", " + value if lower in out else value
    return out, cookies, encoded


def _answer(status, key, headers, body, encoded):
    """The response; its body is text when UTF-8 and not content-encoded, else base64."""
    if not encoded:
        try:
            return {"statusCode": status, key: headers, "body": body.decode(),
                    "isBase64Encoded": False}
        except UnicodeDecodeError:
            pass
    return {"statusCode": status, key: headers, "body": b64encode(body).decode("ascii"),
            "isBase64Encoded": True}


def _rest_response(status, headers, body, event):
    grouped, _, encoded = _response_headers(headers, True)
    return _answer(status, "multiValueHeaders", grouped, body, encoded)


def _http_response(status, headers, body, event):
    joined, cookies, encoded = _response_headers(headers, False)
    answer = _answer(status, "headers", joined, body, encoded)
    answer["cookies"] = cookies
    return answer


def _cookie_name(n):
    """The n-th spelling of set-cookie (n < 512), told apart by the case of its letters."""
    letters = "".join(c.upper() if n >> i & 1 else c for i, c in enumerate("setcookie"))
    return letters[:3] + "-" + letters[3:]


def _alb_response(status, headers, body, event):
    multi = event.get("multiValueHeaders") is not None
    out, cookies, encoded = _response_headers(headers, multi)
    # One value per name without multi-value headers, but ALB tells names apart by case.
    for n, cookie in enumerate(cookies):
        out[_cookie_name(n)] = cookie
    answer = _answer(status, "multiValueHeaders" if multi else "headers", out, body, encoded)
    try:
        answer["statusDescription"] = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        answer["statusDescription"] = str(status)
    return answer


REST = (_rest_request, _rest_response)
HTTP = (_http_request, _http_response)
ALB = (_alb_request, _alb_response)


def recognise(event):
    """The shape of ``event`` as (request parser, response formatter), or None."""
    if not isinstance(event, dict):
        return None
    context = event.get("requestContext")
    if not isinstance(context, dict):
        return None
    if "elb" in context:
        return ALB
    if event.get("version") == "2.0":
        return HTTP
    if "httpMethod" in event:
        return REST
    return None


def _bad_event(reason):
    print(f"warm-web: unrecognised event shape: {reason}", file=sys.stderr, flush=True)
    return {"statusCode": 400, "headers": {"content-type": _PLAIN},
            "body": "warm-web: unrecognised event shape (expected API Gateway REST or HTTP API, "
                    "Function URL or ALB)"}


def server(adapter):
    """A function serving events through ``adapter(request, event, context)``."""

    def serve(event, context):
        shape = recognise(event)
        if shape is None:
            keys = sorted(map(str, event))[:20] if isinstance(event, dict) else type(event).__name__
            return _bad_event(f"top-level keys {keys}")
        parse, respond = shape
        try:
            request = parse(event)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            return _bad_event(f"malformed event ({type(exc).__name__}: {exc})")
        try:
            status, headers, body = adapter(request, event, context)
        except Exception:
            import traceback
            traceback.print_exc()
            status, headers, body = 500, [("Content-Type", _PLAIN)], b"Internal Server Error"
        if request.method == "HEAD":
            body = b""
        return respond(status, headers, body, event)

    return serve
