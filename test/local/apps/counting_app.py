"""A WSGI app that records every request it serves, so tests can prove warm pings never reach it."""
import os


def app(environ, start_response):
    with open(os.environ["REQUEST_LOG"], "a") as log:
        log.write("%s %s %d\n" % (environ["REQUEST_METHOD"], environ["PATH_INFO"], os.getpid()))
    body = b"pid %d" % os.getpid()
    start_response("200 OK", [("content-type", "text/plain"), ("content-length", str(len(body)))])
    return [body]
