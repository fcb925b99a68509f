"""A Flask app exercising what the shim must carry through."""
from flask import Flask, Response, redirect, request, url_for

from payloads import COOKIES, PNG, TEXT, as_json

app = Flask(__name__)
STATS = {"requests": 0}


@app.before_request
def count():
    STATS["requests"] += 1


def _json(data):
    return Response(as_json(data), content_type="application/json")


@app.route("/echo/<path:rest>", methods=["GET", "POST"])
def echo(rest):
    body = request.get_data()
    form = request.mimetype == "application/x-www-form-urlencoded"
    return _json({
        "method": request.method,
        "path": request.path,
        "rest": rest,
        "query": [list(kv) for kv in request.args.items(multi=True)],
        "form": [list(kv) for kv in request.form.items(multi=True)] if form else None,
        "json": request.get_json() if request.is_json else None,
        "cookies": sorted(request.cookies.items()),
        "x_test": request.headers.get("X-Test"),
        "body_len": len(body),
        "url": request.url,
    })


@app.post("/bytes")
def echo_bytes():
    return Response(request.get_data(), content_type="application/octet-stream")


@app.get("/png")
def png():
    return Response(PNG, content_type="image/png")


@app.get("/text")
def text():
    return Response(TEXT, content_type="text/plain; charset=utf-8", headers={"X-App": "flask"})


@app.get("/redirect")
def redirect_view():
    return redirect("/echo/target")


@app.get("/cookies")
def cookies():
    response = Response("ok")
    for name, value, options in COOKIES:
        response.set_cookie(name, value, **options)
    return response


@app.get("/aws")
def aws():
    event, context = request.environ["aws.event"], request.environ["aws.context"]
    return _json({
        "requestId": event["requestContext"]["requestId"],
        "function": context.function_name,
        "remaining": context.get_remaining_time_in_millis(),
    })


@app.get("/where")
def where():
    return _json({
        "script_name": request.script_root,
        "path_info": request.path,
        "url": request.url,
        "reverse": url_for("where"),
    })


@app.get("/boom")
def boom():
    raise RuntimeError("boom")
