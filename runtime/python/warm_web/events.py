"""Event shapes (API Gateway REST and HTTP API, Function URL, ALB): requests in, responses out."""
import binascii
import os
import re
import sys
from base64 import b64decode, b64encode
from http import HTTPStatus
from urllib.parse import quote, unquote

_PLAIN = "text/plain; charset=utf-8"
# Characters a path keeps as they are when a decoded path is %-encoded again ('%' is not one).
_PATH_SAFE = "/:@!$&'()*+,;=~"
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
# Function URLs keep the path as the client sent it; HTTP APIs (any other domain) decode rawPath.
_FUNCTION_URL_DOMAIN = re.compile(r"\.lambda-url\.[a-z0-9-]+\.on\.aws$")
BAD_BASE64 = "warm-web: the event's body is marked isBase64Encoded but is not valid base64"


class BadRequest(ValueError):
    """A recognised event that cannot be served as sent: answered 400 with this message."""


class Request:
    """An HTTP request taken out of an event. Paths are %-encoded as on the wire (an HTTP API's
    rawPath, which arrives decoded, is encoded again), to be decoded exactly once by the adapter.

    ``header_list`` is the headers as received: ``(lower-case name, value)`` pairs, repeats kept in
    order (ASGI passes them on so); ``headers`` joins repeats into one value per name (WSGI/CGI).
    """

    __slots__ = ("method", "script_name", "path", "query", "header_list", "headers", "body",
                 "scheme", "host", "port", "client", "user")

    def __init__(self, event, method, script_name, path, query, header_list, client, user=None):
        body = event.get("body") or ""
        if event.get("isBase64Encoded"):
            try:
                body = b64decode(body, validate=True)
            except binascii.Error:
                raise BadRequest(BAD_BASE64) from None
        else:
            body = body.encode()
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
            # An ALB appends the address it saw to whatever the client sent: only the last
            # entry is not the client's to choose.
            client = _address(headers["x-forwarded-for"].rpartition(",")[2])
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
        # Claims are JSON: only a non-empty string can be a user name.
        self.user = user if isinstance(user, str) and user else None


def _address(entry):
    """An X-Forwarded-For entry without the port an ALB adds when it keeps client ports."""
    entry = entry.strip()
    if entry.startswith("["):
        return entry[1:entry.find("]")] if "]" in entry else entry
    host, colon, port = entry.rpartition(":")
    return host if colon and ":" not in host and port.isdigit() else entry


def _header_list(event):
    """Request headers as ``[(lower name, value)]``, multi-value headers expanded in order."""
    multi = event.get("multiValueHeaders")
    if multi:
        return [(name.lower(), value) for name, values in multi.items() for value in values or ()]
    return [(name.lower(), value) for name, value in (event.get("headers") or {}).items()]


def _joined(header_list):
    """``{lower name: value}``, repeats joined with ',' as werkzeug and gunicorn join them (RFC 9110
    section 5.3), cookies with '; ' (RFC 9113 section 8.2.3) so that they still parse."""
    joined = {}
    for name, value in header_list:
        if name in joined:
            joined[name] += ("; " if name == "cookie" else ",") + value
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


def _strip(prefix, path):
    """``path`` without ``prefix`` when it starts with that whole prefix, else None."""
    if prefix and path.startswith(prefix) and path[len(prefix):len(prefix) + 1] in ("", "/"):
        return path[len(prefix):] or "/"
    return None


def _routed_prefix(event, path):
    """The prefix in front of what the REST resource matched, found from ``resource`` and
    ``pathParameters`` (a custom domain's base path mapping is in front of both ``path`` and
    ``requestContext.path``, so comparing the two cannot find it)."""
    resource = event.get("resource")
    params = event.get("pathParameters") or {}
    if not isinstance(resource, str) or not resource.startswith("/"):
        return ""
    unfilled = []

    def fill(match):
        value = params.get(match.group(1).rstrip("+"))
        if not isinstance(value, str):
            unfilled.append(match.group(0))
            return ""
        return value

    routed = _PLACEHOLDER.sub(fill, resource)
    if unfilled:
        return ""
    # pathParameters are decoded, path is not: compare decoded.
    decoded = unquote(path)
    if routed == "/":
        prefix = decoded.rstrip("/")
    elif decoded.endswith(routed):
        prefix = decoded[:len(decoded) - len(routed)]
    else:
        return ""
    # A mapping's characters are never %-encoded; a prefix that is not in path as is stays.
    return prefix if prefix.startswith("/") and path.startswith(prefix) else ""


def _rest_user(context):
    """The authorised principal: Lambda authorizer, Cognito user pool, or IAM caller."""
    authorizer = context.get("authorizer") or {}
    claims = authorizer.get("claims") or {}
    identity = context.get("identity") or {}
    return authorizer.get("principalId") or claims.get("sub") or identity.get("userArn") or None


def _http_user(context):
    """The authorised principal: JWT subject or IAM caller (a Lambda authorizer's ``lambda``
    context holds only what that authorizer chose to put there)."""
    authorizer = context.get("authorizer") or {}
    jwt = authorizer.get("jwt") or {}
    iam = authorizer.get("iam") or {}
    return (jwt.get("claims") or {}).get("sub") or iam.get("userArn") or None


def _rest_request(event, base):
    context = event["requestContext"]
    path = event.get("path") or "/"
    # On the execute-api domain requestContext.path has the stage in front of path.
    full = context.get("path") or path
    if full.endswith(path):
        script = full[:len(full) - len(path)]
    else:
        script = full if path == "/" else ""
    script = script.rstrip("/")
    rest = _strip(base, path)
    if rest is not None:
        script, path = script + base, rest
    elif not script:
        prefix = _routed_prefix(event, path)
        if prefix:
            script, path = prefix, path[len(prefix):] or "/"
    # API Gateway REST hands query values over decoded: encode them again.
    query = _query(event, True)
    client = (context.get("identity") or {}).get("sourceIp")
    return Request(event, event["httpMethod"], script, path, query, _header_list(event), client,
                   _rest_user(context))


def _http_request(event, base):
    context = event["requestContext"]
    http = context["http"]
    path = event.get("rawPath") or "/"
    if not _FUNCTION_URL_DOMAIN.search(context.get("domainName") or ""):
        # HTTP API hands rawPath over %-decoded (a Function URL does not): encode it again so
        # that it is decoded exactly once, like every other path.
        path = quote(path, safe=_PATH_SAFE)
    script = ""
    stage = context.get("stage")
    if stage and stage != "$default":
        rest = _strip("/" + stage, path)
        if rest is not None:
            script, path = "/" + stage, rest
    rest = _strip(base, path)
    if rest is not None:
        script, path = script + base, rest
    headers = _header_list(event)
    cookies = event.get("cookies")
    if cookies:
        # Payload 2.0 moves the Cookie header's parts into ``cookies``: put them back as one.
        headers.append(("cookie", "; ".join(cookies)))
    return Request(event, http["method"], script, path, event.get("rawQueryString") or "", headers,
                   http.get("sourceIp"), _http_user(context))


def _alb_request(event, base):
    path = event.get("path") or "/"
    script = ""
    rest = _strip(base, path)
    if rest is not None:
        script, path = base, rest
    # ALB hands query keys and values over still URL-encoded: join them as they are.
    return Request(event, event["httpMethod"], script, path, _query(event, False),
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


_warned = []


def _warn_alb_cookies():
    if not _warned:
        _warned.append(True)
        print("warm-web: ALB without multi-value headers returns only the last Set-Cookie; "
              "enable lambda.multi_value_headers.enabled on the target group",
              file=sys.stderr, flush=True)


def _alb_response(status, headers, body, event):
    multi = event.get("multiValueHeaders") is not None
    out, cookies, encoded = _response_headers(headers, multi)
    if cookies:
        # Without multi-value headers ALB takes one value per name (names are not case
        # sensitive), and of repeats the last: enable multi-value headers for several cookies.
        out["set-cookie"] = cookies[-1]
        if len(cookies) > 1:
            _warn_alb_cookies()
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
    return _plain_400("warm-web: unrecognised event shape (expected API Gateway REST or HTTP API, "
                      "Function URL or ALB)")


def _plain_400(message):
    return {"statusCode": 400, "headers": {"content-type": _PLAIN}, "body": message}


# Scheduled events and other warmers' pings reach a function now and then: answered without the
# app, with one debug line rather than an error, since there is nothing to fix in the function.
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "a number", float: "a number", type(None): "null"}


def _not_http(event):
    kind = _JSON_TYPES.get(type(event), type(event).__name__)
    keys = f" with keys {sorted(map(str, event))[:20]}" if isinstance(event, dict) else ""
    print(f"warm-web: debug: not an HTTP event ({kind}{keys}); answered 400 without the app",
          file=sys.stderr, flush=True)
    return _plain_400("warm-web: unrecognised event shape (expected an API Gateway REST or HTTP "
                      f"API, Function URL or ALB event; got {kind})")


def base_path(raw=None):
    """WARM_WEB_BASE_PATH checked: '' when unset, else a path that starts with '/' and does not
    end with one."""
    if raw is None:
        raw = os.environ.get("WARM_WEB_BASE_PATH", "")
    if raw and (not raw.startswith("/") or raw.endswith("/") or "//" in raw or "?" in raw or "#" in raw):
        raise RuntimeError(f"WARM_WEB_BASE_PATH={raw!r} must start with '/', not end with '/' "
                           "and hold no '//', '?' or '#' (for example '/api')")
    return raw


def server(adapter, base=None):
    """A function serving events through ``adapter(request, event, context)``; ``base`` is the
    base path to take off request paths (WARM_WEB_BASE_PATH by default)."""
    if base is None:
        base = base_path()

    def serve(event, context):
        shape = recognise(event)
        if shape is None:
            return _not_http(event)
        parse, respond = shape
        try:
            request = parse(event, base)
        except BadRequest as exc:
            print(f"warm-web: {exc}", file=sys.stderr, flush=True)
            return respond(400, [("content-type", _PLAIN)], str(exc).encode(), event)
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
