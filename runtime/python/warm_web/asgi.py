"""ASGI adapter: lifespan startup at INIT, then each Request run on the same event loop."""
import asyncio
import atexit
import sys
import traceback
from urllib.parse import quote, unquote

from .events import _PATH_SAFE

_ASGI = {"version": "3.0", "spec_version": "2.3"}
# Reserved characters and existing %-escapes stay; spaces and non-ASCII get escaped.
_RAW_SAFE = _PATH_SAFE + "%"
_STARTED = "lifespan.startup.complete"
_FAILED = "lifespan.startup.failed"


def _type(message):
    """A sent message's type, for error text; whatever the app sent, even not a dict."""
    return message.get("type") if isinstance(message, dict) else type(message).__name__


class AsgiAdapter:
    """Owns the event loop; runs lifespan startup once, then one request per call."""

    def __init__(self, app):
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.state = self._startup()

    def _startup(self):
        """Run lifespan startup; return the lifespan state, or None if the app has no lifespan."""
        loop = self.loop
        state = {}
        answer = loop.create_future()
        self._stop = loop.create_future()
        asked = False

        async def receive():
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "lifespan.startup"}
            await self._stop
            return {"type": "lifespan.shutdown"}

        async def send(message):
            if not answer.done():
                answer.set_result(message)

        scope = {"type": "lifespan", "asgi": _ASGI, "state": state}
        self._lifespan = loop.create_task(self.app(scope, receive, send))
        loop.run_until_complete(
            asyncio.wait((self._lifespan, answer), return_when=asyncio.FIRST_COMPLETED))
        if not answer.done():
            error = self._lifespan.exception() or "it returned without answering"
            print(f"warm-web: ASGI app does not support lifespan ({error!r}); serving without it",
                  file=sys.stderr, flush=True)
            return None
        message = answer.result()
        kind = _type(message)
        if kind != _STARTED:
            # The app spoke lifespan, so it is not "unsupported": INIT fails, the task is ended.
            self._lifespan.cancel()
            loop.run_until_complete(asyncio.wait((self._lifespan,), timeout=5))
            loop.close()
            if kind == _FAILED:
                raise RuntimeError("ASGI lifespan startup failed: " + message.get("message", ""))
            raise RuntimeError(f"ASGI lifespan startup: the app answered 'lifespan.startup' with "
                               f"{kind!r}; expected {_STARTED!r} or {_FAILED!r}")
        # Lambda ends environments without notice, but a local run (tests, emulators) exits
        # normally: give the app its shutdown then rather than drop a pending task.
        atexit.register(self._shutdown)
        return state

    def _shutdown(self):
        self._stop.set_result(None)
        self.loop.run_until_complete(asyncio.wait((self._lifespan,), timeout=5))

    def __call__(self, request, event, context):
        root = unquote(request.script_name)
        scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.scheme,
            "root_path": root,
            # The full path, root_path included, as uvicorn and Starlette expect.
            "path": root + unquote(request.path),
            "raw_path": quote(request.script_name + request.path, safe=_RAW_SAFE).encode(),
            "query_string": request.query.encode(),
            # As received, repeats apart and in order: the spec keeps them so, as uvicorn does.
            "headers": [(k.encode(), v.encode()) for k, v in request.header_list],
            "client": (request.client, 0) if request.client else None,
            "server": (request.host, int(request.port)),
            "aws.event": event,
            "aws.context": context,
        }
        if self.state is not None:
            scope["state"] = self.state.copy()
        return self.loop.run_until_complete(self._run(scope, request.body))

    async def _run(self, scope, body):
        finished = self.loop.create_future()
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        response = _Response()

        async def receive():
            if pending:
                return pending.pop()
            await finished
            return {"type": "http.disconnect"}

        async def send(message):
            response.add(message)
            if response.complete and not finished.done():
                finished.set_result(None)

        try:
            await self.app(scope, receive, send)
        except Exception:
            if not response.complete:
                raise
            # Starlette's ServerErrorMiddleware sends its 500 page and then re-raises, so that
            # servers log the error: the answer the app completed stands, the error is logged.
            print("warm-web: the ASGI app raised after completing its response, which is sent:",
                  file=sys.stderr, flush=True)
            traceback.print_exc()
        finally:
            if not finished.done():
                finished.set_result(None)
        if response.start is None:
            raise RuntimeError("ASGI app returned without starting a response")
        headers = [(k.decode("latin-1"), v.decode("latin-1"))
                   for k, v in response.start.get("headers", ())]
        return response.start["status"], headers, b"".join(response.chunks)


class _Response:
    """The messages an app sends for one response, in the order the spec allows."""

    def __init__(self):
        self.start = None
        self.chunks = []
        self.complete = False

    def add(self, message):
        """Take one sent message; one out of order raises in the app's ``send`` (as uvicorn's
        does), so it is the app's error and reaches the client as one."""
        kind = _type(message)
        if self.complete:
            raise RuntimeError(f"ASGI app sent {kind!r} after its response was complete")
        if self.start is None:
            if kind != "http.response.start":
                raise RuntimeError(f"ASGI app sent {kind!r} before 'http.response.start'")
            self.start = message
        elif kind != "http.response.body":
            raise RuntimeError(f"ASGI app sent {kind!r} after 'http.response.start'; expected "
                               "'http.response.body'")
        else:
            self.chunks.append(message.get("body", b""))
            self.complete = not message.get("more_body", False)
