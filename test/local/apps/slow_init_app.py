"""A WSGI app whose INIT takes a while, like a framework booting."""
import time

time.sleep(float(__import__("os").environ.get("INIT_SECONDS", "0.3")))


def app(environ, start_response):
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"ok"]
