"""ASGI adapter: lifespan startup at INIT, then each Request run on the same event loop."""
import asyncio
import atexit
import sys
from urllib.parse import quote, unquote

_ASGI = {"version": "3.0", "spec_version": "2.3"}
# Reserved characters and existing %-escapes stay; spaces and non-ASCII get escaped.
_RAW_SAFE = "/%:@!$&'()*+,;=~"


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
        if message["type"] == "lifespan.startup.failed":
            raise RuntimeError("ASGI lifespan startup failed: " + message.get("message", ""))
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
            "headers": [(k.encode(), v.encode()) for k, v in request.headers.items()],
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
        start = None
        chunks = []

        async def receive():
            if pending:
                return pending.pop()
            await finished
            return {"type": "http.disconnect"}

        async def send(message):
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False) and not finished.done():
                    finished.set_result(None)

        try:
            await self.app(scope, receive, send)
        finally:
            if not finished.done():
                finished.set_result(None)
        if start is None:
            raise RuntimeError("ASGI app returned without starting a response")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", ())]
        return start["status"], headers, b"".join(chunks)
