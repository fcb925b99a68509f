"""A FastAPI app exercising what the shim must carry through, with a lifespan."""
import json
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from payloads import COOKIES, PNG, TEXT, as_json

STATS = {"requests": 0, "startups": 0}


@asynccontextmanager
async def lifespan(app):
    STATS["startups"] += 1
    yield {"requests_at_startup": STATS["requests"]}


class CountRequests:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            STATS["requests"] += 1
        await self.app(scope, receive, send)


app = FastAPI(lifespan=lifespan)
app.add_middleware(CountRequests)


def _json(data):
    return Response(as_json(data), media_type="application/json")


@app.api_route("/echo/{rest:path}", methods=["GET", "POST"])
async def echo(rest: str, request: Request):
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    return _json({
        "method": request.method,
        "path": request.url.path,
        "rest": rest,
        "query": [list(kv) for kv in request.query_params.multi_items()],
        "form": parse_qsl(body.decode(), keep_blank_values=True)
        if content_type == "application/x-www-form-urlencoded" else None,
        "json": json.loads(body) if content_type == "application/json" else None,
        "cookies": sorted(request.cookies.items()),
        "x_test": request.headers.get("x-test"),
        "body_len": len(body),
        "url": str(request.url),
    })


@app.post("/bytes")
async def echo_bytes(request: Request):
    return Response(await request.body(), media_type="application/octet-stream")


@app.get("/png")
async def png():
    return Response(PNG, media_type="image/png")


@app.api_route("/text", methods=["GET", "HEAD"])
async def text():
    return Response(TEXT, media_type="text/plain; charset=utf-8", headers={"X-App": "fastapi"})


@app.get("/redirect")
async def redirect_view():
    return RedirectResponse("/echo/target", status_code=302)


@app.get("/cookies")
async def cookies():
    response = Response("ok")
    for name, value, options in COOKIES:
        response.set_cookie(name, value, **options)
    return response


@app.get("/aws")
async def aws(request: Request):
    event, context = request.scope["aws.event"], request.scope["aws.context"]
    return _json({
        "requestId": event["requestContext"]["requestId"],
        "function": context.function_name,
        "remaining": context.get_remaining_time_in_millis(),
    })


@app.get("/where")
async def where(request: Request):
    return _json({
        "script_name": request.scope["root_path"],
        "path_info": request.url.path,
        "url": str(request.url),
        "reverse": str(request.url_for("where")),
    })


@app.get("/lifespan")
async def lifespan_state(request: Request):
    return _json({"startups": STATS["startups"],
                  "requests_at_startup": request.state.requests_at_startup})


@app.get("/boom")
async def boom():
    raise RuntimeError("boom")
