"""ASGI apps for the adapter conformance tests; uvicorn serves each one too, as the reference."""
import json

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


class Teapot(Exception):
    """Raised by a view; the app's own handler turns it into a 418."""


# FastAPI: a handler for one exception type (ExceptionMiddleware answers, nothing re-raised) and one
# for everything else (ServerErrorMiddleware sends its answer, then re-raises on purpose).
fastapi_app = FastAPI()


@fastapi_app.exception_handler(Teapot)
async def teapot_handler(request, exc):
    return JSONResponse({"error": "teapot", "detail": str(exc)}, status_code=418,
                        headers={"x-handler": "teapot"})


@fastapi_app.exception_handler(Exception)
async def crash_handler(request, exc):
    return JSONResponse({"error": "custom 500", "type": type(exc).__name__}, status_code=500,
                        headers={"x-handler": "crash"})


@fastapi_app.get("/teapot")
async def teapot():
    raise Teapot("short and stout")


@fastapi_app.get("/crash")
async def crash():
    raise ValueError("the view fell over")


@fastapi_app.get("/ok")
async def ok():
    return {"ok": True}


async def _starlette_crash(request):
    raise KeyError("no such thing")


async def _starlette_500(request, exc):
    return PlainTextResponse(f"starlette says sorry ({type(exc).__name__})", status_code=500,
                             headers={"x-handler": "starlette"})


# Plain Starlette, a 500 handler given by status code: the same send-then-re-raise path.
starlette_app = Starlette(routes=[Route("/crash", _starlette_crash)],
                          exception_handlers={500: _starlette_500})


async def raise_after_response(scope, receive, send):
    """A bare app that finishes its response and then raises (a failing after-response hook)."""
    if scope["type"] != "http":
        raise RuntimeError("only http is spoken here")
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"4")]})
    await send({"type": "http.response.body", "body": b"done"})
    raise RuntimeError("after-response hook failed")


async def body_after_complete(scope, receive, send):
    """Sends one more body after the last one: an app error once the response is complete."""
    if scope["type"] != "http":
        raise RuntimeError("only http is spoken here")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"whole"})
    await send({"type": "http.response.body", "body": b" and more"})


async def raise_mid_response(scope, receive, send):
    """Starts a response, sends part of its body, then raises: the response is not complete."""
    if scope["type"] != "http":
        raise RuntimeError("only http is spoken here")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"half", "more_body": True})
    raise RuntimeError("stream broke")


async def echo_headers(scope, receive, send):
    """Answers with ``scope["headers"]`` as a JSON list of [name, value] pairs."""
    if scope["type"] != "http":
        raise RuntimeError("only http is spoken here")
    body = json.dumps([[k.decode("latin-1"), v.decode("latin-1")]
                       for k, v in scope["headers"]]).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def double_start(scope, receive, send):
    """Sends ``http.response.start`` twice: an app error."""
    if scope["type"] != "http":
        raise RuntimeError("only http is spoken here")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.start", "status": 202, "headers": []})
    await send({"type": "http.response.body", "body": b"never"})


async def body_before_start(scope, receive, send):
    """Sends a body with no ``http.response.start`` before it: an app error."""
    if scope["type"] != "http":
        raise RuntimeError("only http is spoken here")
    await send({"type": "http.response.body", "body": b"headless"})


async def lifespan_answers_http(scope, receive, send):
    """Answers lifespan startup with an HTTP message."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await receive()
        return
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body"})


async def lifespan_answers_shutdown(scope, receive, send):
    """Answers lifespan startup with ``lifespan.shutdown.complete``: a lifespan message, but not
    the startup answer."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        await receive()
        return
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body"})
