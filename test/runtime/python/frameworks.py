"""The three test apps, each with its own framework's test client as the reference."""
import importlib

from eventshapes import Answer


def _split(items):
    headers, cookies = {}, []
    for name, value in items:
        name = name.lower()
        if name == "set-cookie":
            cookies.append(value)
        else:
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers, cookies


def _headers(spec):
    headers = dict(spec.headers)
    if spec.cookies:
        headers["cookie"] = "; ".join(spec.cookies)
    return headers


def django_reference(spec, host):
    from django.test import Client

    response = Client().generic(
        spec.method, spec.url, data=spec.body, secure=True,
        content_type=spec.headers.get("content-type", "application/octet-stream"),
        headers={"host": host, **_headers(spec)})
    headers, _ = _split(response.items())
    cookies = [morsel.OutputString() for morsel in response.cookies.values()]
    return Answer(response.status_code, headers, cookies, response.content)


def flask_reference(spec, host):
    from flaskapp import app

    response = app.test_client(use_cookies=False).open(
        spec.url, method=spec.method, base_url=f"https://{host}", headers=_headers(spec),
        data=spec.body)
    headers, cookies = _split(response.headers.items())
    return Answer(response.status_code, headers, cookies, response.get_data())


def fastapi_reference(spec, host):
    from fastapi.testclient import TestClient
    from fastapiapp import app

    client = TestClient(app, base_url=f"https://{host}", follow_redirects=False)
    response = client.request(spec.method, spec.url, headers=_headers(spec),
                              content=spec.body or None)
    headers, cookies = _split(response.headers.multi_items())
    return Answer(response.status_code, headers, cookies, response.content)


FRAMEWORKS = {
    # name: (WARM_WEB_APP, kind, module holding STATS, reference client)
    "django": ("mysite.wsgi:application", "wsgi", "mysite.counting", django_reference),
    "flask": ("flaskapp:app", "wsgi", "flaskapp", flask_reference),
    "fastapi": ("fastapiapp:app", "asgi", "fastapiapp", fastapi_reference),
}


def requests_seen(framework):
    """How many requests the framework's app has counted so far."""
    return importlib.import_module(FRAMEWORKS[framework][2]).STATS["requests"]
