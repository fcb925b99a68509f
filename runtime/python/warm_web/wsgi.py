"""WSGI adapter: runs a Request through a WSGI app and collects the response."""
import sys
from io import BytesIO
from urllib.parse import unquote_to_bytes

_CGI_NAMES = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


def _native(path):
    """A URL path as PEP 3333 wants it: %-decoded bytes, spelled as latin-1 text."""
    if "%" in path:
        return unquote_to_bytes(path).decode("latin-1")
    return path if path.isascii() else path.encode().decode("latin-1")


class WsgiAdapter:
    """Calls a WSGI app with one buffered request; returns (status, headers, body)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, request, event, context):
        environ = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": _native(request.script_name),
            "PATH_INFO": _native(request.path),
            "QUERY_STRING": request.query,
            "SERVER_NAME": request.host,
            "SERVER_PORT": request.port,
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": request.scheme,
            "wsgi.input": BytesIO(request.body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "aws.event": event,
            "aws.context": context,
        }
        if request.client:
            environ["REMOTE_ADDR"] = request.client
        if request.user:
            # What API Gateway's authorizer vouched for, as a server's own auth would set it
            # (Django's RemoteUserMiddleware reads it).
            environ["REMOTE_USER"] = request.user
        for name, value in request.headers.items():
            key = _CGI_NAMES.get(name)
            if key is None:
                # An underscore name would land on the same key as its dashed twin: drop it,
                # as common WSGI servers do, so it cannot pose as a proxy's header.
                if "_" in name:
                    continue
                key = "HTTP_" + name.upper().replace("-", "_")
            environ[key] = value if value.isascii() else value.encode().decode("latin-1")

        started = []
        chunks = []

        def start_response(status, headers, exc_info=None):
            # Nothing is sent before the app finishes, so a later call simply replaces the first.
            started[:] = (status, headers)
            return chunks.append

        result = self.app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        return int(status[:3]), headers, b"".join(chunks)
