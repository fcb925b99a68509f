"""Bare WSGI/ASGI apps for failure paths; stdlib only so INIT stays light."""

STATS = {"requests": 0}


def wsgi_app(environ, start_response):
    STATS["requests"] += 1
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("boom")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok ", environ["PATH_INFO"].encode("latin-1")]


async def asgi_without_lifespan(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError("only http is spoken here")
    STATS["requests"] += 1
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok", "more_body": True})
    await send({"type": "http.response.body", "body": b" " + scope["path"].encode()})


async def asgi_failing_startup(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    raise AssertionError("never served")


def raising_handler(event, context):
    raise ValueError("bad input")


NOT_CALLABLE = 42
