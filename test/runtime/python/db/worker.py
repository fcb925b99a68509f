"""The Django side of the database tests, in its own process.

pytest runs the shim tests with another Django project configured in-process, and Django can be set up once
per process, so this project lives here: conftest.py starts ``python worker.py`` with the services' env,
sends one JSON command a line on stdin and reads one JSON answer a line back. Every command runs real code:
the WSGI app with the real middleware chain, the ORM through the router, real PostgreSQL and Redis.
"""
import json
import logging
import os
import sys
import time
import traceback
import types
from io import BytesIO

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
sys.path[:0] = [os.path.join(ROOT, "runtime", "python"), os.path.join(HERE, "project")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wwproj.settings")

# Answers go to the real stdout; anything printed goes to stderr.
_answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
sys.stdout = sys.stderr

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import connections, router, transaction  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

import warm_web.django as ww  # noqa: E402
from wwitems.models import Item, Server  # noqa: E402


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append({"level": record.levelname, "message": record.getMessage()})


RECORDS = _Records()
logging.getLogger("warm_web").addHandler(RECORDS)
logging.getLogger("warm_web").setLevel(logging.DEBUG)

APP = get_wsgi_application()
with override_settings(MIDDLEWARE=[]):
    from django.core.handlers.wsgi import WSGIHandler

    APP_WITHOUT_MIDDLEWARE = WSGIHandler()


def _wsgi(app, method, path, query=""):
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SCRIPT_NAME": "",
        "SERVER_NAME": "testserver", "SERVER_PORT": "443", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver", "wsgi.version": (1, 0), "wsgi.url_scheme": "https",
        "wsgi.input": BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.multithread": False,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    status = []
    body = b"".join(app(environ, lambda s, h, exc=None: status.append(s)))
    code = int(status[0].split()[0])
    if code != 200:
        raise AssertionError(f"{method} {path}?{query} answered {status[0]}: {body[:500]!r}")
    return json.loads(body)


# ---------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------

def setup():
    call_command("migrate", verbosity=0, interactive=False)
    wait_replica()
    return {"databases": sorted(connections.settings)}


def request(method, path, query="", middleware=True):
    return _wsgi(APP if middleware else APP_WITHOUT_MIDDLEWARE, method, path, query)


def orm_read():
    """A read outside any request, through the router."""
    row = Server.objects.get()
    return {"port": row.port, "standby": row.standby, "alias": Server.objects.all().db}


def wait_replica(timeout=10.0):
    """Until the replica has replayed everything the primary has written so far (skipped if it is down)."""
    with connections[ww.DEFAULT].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        lsn = cursor.fetchone()[0]
    deadline = time.monotonic() + timeout
    import psycopg

    settings = connections.settings[ww.REPLICA]
    with psycopg.connect(host=settings["HOST"], port=settings["PORT"], dbname=settings["NAME"],
                         user=str(settings["USER"]), password=str(settings["PASSWORD"]), autocommit=True) as conn:
        while True:
            if conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]).fetchone()[0]:
                return True
            if time.monotonic() > deadline:
                raise AssertionError(f"the replica did not replay {lsn} within {timeout}s")
            time.sleep(0.02)


def routing_decisions():
    """What the router answers in each state: writes are always 'default'."""
    out = {}
    with ww.unit_of_work():
        out["read"] = router.db_for_read(Item)
        out["write"] = router.db_for_write(Item)
        out["read_after_write"] = router.db_for_read(Item)
    with ww.unit_of_work():
        with transaction.atomic():
            out["read_in_atomic"] = router.db_for_read(Item)
            out["write_in_atomic"] = router.db_for_write(Item)
    with ww.unit_of_work():
        out["read_after_atomic_write"] = router.db_for_read(Item)
    with ww.unit_of_work():
        with connections[ww.DEFAULT].cursor() as cursor:
            cursor.execute("UPDATE wwitems_item SET value = value WHERE name = %s", ["nobody"])
        out["read_after_raw_write"] = router.db_for_read(Item)
    with ww.unit_of_work():
        with connections[ww.DEFAULT].cursor() as cursor:
            cursor.execute("SELECT 1")
        out["read_after_raw_select"] = router.db_for_read(Item)
    out["migrate"] = {alias: router.allow_migrate(alias, "wwitems", model_name="item") for alias in connections.settings}
    return out


def write_through_replica(name):
    """A write sent to the replica alias on purpose (the router never does): the server must refuse it."""
    try:
        Item.objects.using(ww.REPLICA).create(name=name)
    except Exception as error:  # noqa: BLE001
        return {"error": type(error).__name__, "message": str(error)}
    return {"error": None}


def write_outside_request(name):
    """db_for_write while the replica is down or up: always default, and the row lands on the primary."""
    with ww.unit_of_work():
        item = Item.objects.create(name=name)
        return {"alias": item._state.db, "read_alias": Item.objects.filter(name=name).db}


def middleware_paths():
    """ReadYourWritesMiddleware, sync and async: each request starts unpinned; the flag is restored after."""
    import asyncio

    from asgiref.sync import iscoroutinefunction

    seen = {}

    def get_response(request):
        seen["sync_before"] = ww._wrote.get()
        ww.pin_to_writer()
        seen["sync_read"] = router.db_for_read(Item)
        return "sync response"

    async def aget_response(request):
        seen["async_before"] = ww._wrote.get()
        ww.pin_to_writer()
        seen["async_pinned"] = ww._wrote.get()
        return "async response"

    with ww.unit_of_work():
        ww.pin_to_writer()  # left over from before the request
        seen["sync_result"] = ww.ReadYourWritesMiddleware(get_response)("request")
        seen["after"] = ww._wrote.get()
    middleware = ww.ReadYourWritesMiddleware(aget_response)
    seen["async_capable"] = iscoroutinefunction(middleware)
    seen["async_result"] = asyncio.run(middleware("request"))
    return seen


def logs(clear=True):
    records = [r for r in RECORDS.records if r["level"] in ("WARNING", "ERROR", "CRITICAL")]
    if clear:
        RECORDS.records.clear()
    return records


def status():
    return ww.replica_status()


def close_connections():
    for conn in connections.all(initialized_only=True):
        conn.close()
    return True


class _FakeBoto3:
    """boto3 replaced by a recorder (no AWS here): Secrets Manager answers `secret`, RDS signs `token`."""

    def __init__(self, secret=None, token=None):
        self.calls = []
        self.secret = secret
        self.token = token

    def __enter__(self):
        fake = types.ModuleType("boto3")
        recorder = self

        class Client:
            def __init__(self, service):
                self.service = service

            def get_secret_value(self, SecretId):
                recorder.calls.append(["secretsmanager.get_secret_value", SecretId])
                secret = recorder.secret
                return {"SecretString": secret if isinstance(secret, str) else json.dumps(secret)}

            def generate_db_auth_token(self, DBHostname, Port, DBUsername):
                recorder.calls.append(["rds.generate_db_auth_token", DBHostname, Port, DBUsername])
                return recorder.token

        fake.client = Client
        self.saved = sys.modules.get("boto3")
        sys.modules["boto3"] = fake
        ww._SECRETS.clear()
        ww._RDS.clear()
        return self

    def __exit__(self, *exc):
        ww._SECRETS.clear()
        ww._RDS.clear()
        if self.saved is None:
            sys.modules.pop("boto3", None)
        else:
            sys.modules["boto3"] = self.saved


def credentials(env, secret=None, token_for=None):
    """DATABASES from ``env`` (boto3 faked), then two real connections to the writer through Django's own
    backend: what boto3 was asked, and what the server saw."""
    from django.db.utils import ConnectionHandler

    with _FakeBoto3(secret, token_for) as boto:
        settings = ww.databases(environ=env)["default"]
        seen = []
        handler = ConnectionHandler({"default": settings})
        for _ in range(2):
            conn = handler["default"]
            with conn.cursor() as cursor:
                cursor.execute("SELECT current_user, inet_server_port(), "
                               "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())")
                user, port, ssl = cursor.fetchone()
            seen.append({"user": user, "port": port, "ssl": ssl})
            conn.close()
        return {"calls": boto.calls, "seen": seen, "options": settings["OPTIONS"]}


def cache_with_secret(env, secret, key):
    """CACHES from ``env`` with CACHE_SECRET_ARN (boto3 faked): a real RedisCache that authenticates as the
    URL's user with the secret's password, read once."""
    from django.core.cache.backends.redis import RedisCache

    with _FakeBoto3(secret) as boto:
        params = ww.caches(environ=env)["default"]
        cache = RedisCache(params["LOCATION"], params)
        before = list(boto.calls)
        cache.set(key, "secret-hello", 30)
        value = cache.get(key)
        whoami = cache._cache.get_client(key).acl_whoami()
        cache.close()
        cache.set(key + "-2", 1)  # a new connection: the password is not read again
        return {"location": params["LOCATION"], "calls_before_use": before, "calls": boto.calls, "value": value,
                "whoami": whoami.decode() if isinstance(whoami, bytes) else whoami}


def cache_roundtrip(key, value):
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    cache = caches["default"]
    return {"backend": type(cache).__name__, "redis": isinstance(cache, RedisCache),
            "http": request("GET", "/cache/", f"key={key}&value={value}"),
            "read_back": request("GET", "/cache/", f"key={key}")}


COMMANDS = {f.__name__: f for f in (setup, request, orm_read, wait_replica, routing_decisions, write_through_replica,
                                    write_outside_request, middleware_paths, logs, status, close_connections, credentials, cache_with_secret,
                                    cache_roundtrip)}


def main():
    for line in sys.stdin:
        command = json.loads(line)
        try:
            answer = {"ok": True, "result": COMMANDS[command["op"]](**command.get("args", {}))}
        except BaseException as error:  # noqa: BLE001 - reported to the test
            answer = {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        _answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
