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
from http.cookies import SimpleCookie
from io import BytesIO
from urllib.parse import urlsplit

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

class _Statements:
    """Every statement each alias ran, recorded by an execute wrapper on each connection."""

    def __init__(self):
        self.seen = []

    def __call__(self, execute, sql, params, many, context):
        self.seen.append((context["connection"].alias, sql if isinstance(sql, str) else str(sql)))
        return execute(sql, params, many, context)

    def attach(self, sender, connection, **kwargs):
        if self not in connection.execute_wrappers:
            connection.execute_wrappers.append(self)


STATEMENTS = _Statements()
from django.db.backends.signals import connection_created  # noqa: E402

connection_created.connect(STATEMENTS.attach)

APP = get_wsgi_application()
from django.conf import settings  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402

with override_settings(MIDDLEWARE=[]):
    APP_WITHOUT_MIDDLEWARE = WSGIHandler()
# What the project had before cross-request read-your-writes: sessions and auth, no ReadYourWritesMiddleware.
with override_settings(MIDDLEWARE=[m for m in settings.MIDDLEWARE if m != "warm_web.django.ReadYourWritesMiddleware"]):
    APP_PER_REQUEST_ONLY = WSGIHandler()


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


def _wsgi_raw(app, method, path, query, cookies):
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SCRIPT_NAME": "",
        "SERVER_NAME": "testserver", "SERVER_PORT": "443", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver", "wsgi.version": (1, 0), "wsgi.url_scheme": "https",
        "wsgi.input": BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.multithread": False,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    if cookies:
        environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    started = []
    body = b"".join(app(environ, lambda s, h, exc=None: started.append((s, h))))
    status, headers = started[0]
    return int(status.split()[0]), headers, body


APPS = {"full": APP, "per_request_only": APP_PER_REQUEST_ONLY}


# ---------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------

def browse(steps, jar=None, app="full", writer_apps=None, follow=True, max_age=None):
    """A client with a cookie jar: each step a request (redirects followed when ``follow``); per response its
    status, JSON body, the cookies set and deleted, and the statements each alias ran while serving it."""
    jar = dict(jar or {})
    overrides = {} if writer_apps is None else {"WARM_WEB_WRITER_APPS": writer_apps}
    if max_age is not None:
        overrides["WARM_WEB_RYW_MAX_AGE"] = max_age
    out = []
    with override_settings(**overrides):
        pending = [(step["method"], step["path"], step.get("query", "")) for step in steps]
        while pending:
            method, path, query = pending.pop(0)
            mark = len(STATEMENTS.seen)
            status, headers, body = _wsgi_raw(APPS[app], method, path, query, jar)
            ran = STATEMENTS.seen[mark:]
            answer = {"request": f"{method} {path}", "status": status, "set": {}, "deleted": [],
                      "statements": {alias: sum(1 for a, _ in ran if a == alias) for alias in connections.settings},
                      "ryw_checks": {alias: sum(1 for a, sql in ran if a == alias and "pg_last_wal_replay_lsn" in sql)
                                     for alias in connections.settings},
                      "session_reads": {alias: sum(1 for a, sql in ran if a == alias and sql.startswith("SELECT")
                                                   and "django_session" in sql) for alias in connections.settings}}
            for name, value in headers:
                if name.lower() == "set-cookie":
                    for morsel in SimpleCookie(value).values():
                        if morsel["max-age"] == "0":
                            jar.pop(morsel.key, None)
                            answer["deleted"].append(morsel.key)
                        else:
                            jar[morsel.key] = morsel.value
                            answer["set"][morsel.key] = {
                                "max-age": morsel["max-age"], "httponly": bool(morsel["httponly"]),
                                "secure": bool(morsel["secure"]), "samesite": morsel["samesite"], "path": morsel["path"]}
                elif name.lower() == "location" and follow and status in (301, 302, 303):
                    target = urlsplit(value)
                    pending.insert(0, ("GET", target.path, target.query))
            try:
                answer["json"] = json.loads(body)
            except ValueError:
                answer["json"] = None
            out.append(answer)
    return {"responses": out, "jar": jar}


def create_user(username, password):
    from django.contrib.auth.models import User

    with ww.unit_of_work():
        User.objects.create_user(username=username, password=password)
    wait_replica()
    return True


def middleware_before_session_is_required():
    with override_settings(MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                                       "warm_web.django.ReadYourWritesMiddleware"]):
        try:
            ww.ReadYourWritesMiddleware(lambda request: None)
        except Exception as error:  # noqa: BLE001
            return {"error": type(error).__name__, "message": str(error)}
    return {"error": None}


def middleware_without_replica():
    """Without a replica alias there is nothing to catch up with: no cookie, no position query."""
    from django.http import HttpRequest, HttpResponse

    def get_response(request):
        ww.pin_to_writer()
        return HttpResponse("wrote")

    with override_settings(DATABASES={ww.DEFAULT: settings.DATABASES[ww.DEFAULT]}):
        middleware = ww.ReadYourWritesMiddleware(get_response)
    mark = len(STATEMENTS.seen)
    with ww.unit_of_work():
        response = middleware(HttpRequest())
    return {"cookies": sorted(response.cookies), "statements": STATEMENTS.seen[mark:]}


def bad_settings(name, value):
    with override_settings(**{name: value}):
        try:
            ww.ReadYourWritesMiddleware(lambda request: None)
        except Exception as error:  # noqa: BLE001
            return {"error": type(error).__name__, "message": str(error)}
    return {"error": None}


def cookie_value(raw):
    """What a read-your-writes cookie holds, checked with the project's SECRET_KEY."""
    return ww._signer().unsign(raw)


def lag_window(lag_ms=None, cap=30):
    """ww._lag_window against a stand-in for Aurora's aurora_replica_status() (None: the function does not
    exist, as on community PostgreSQL)."""
    conn = connections[ww.DEFAULT]
    ww._positions.lag_window = None
    with conn.cursor() as cursor:
        if lag_ms is not None:
            cursor.execute(
                "CREATE OR REPLACE FUNCTION public.aurora_replica_status() "
                "RETURNS TABLE (server_id text, session_id text, replica_lag_in_msec float8) LANGUAGE sql AS "
                f"$$ VALUES ('writer', 'MASTER_SESSION_ID', NULL::float8), ('reader-1', 'a-uuid', {float(lag_ms)}), "
                "('reader-2', 'b-uuid', 0::float8) $$")
        try:
            return ww._lag_window(conn, cap)
        finally:
            cursor.execute("DROP FUNCTION IF EXISTS public.aurora_replica_status()")
            ww._positions.lag_window = None


def writer_without_wal_position():
    """The writer answers as Aurora does (feature_not_supported for its WAL functions): the cookie becomes a
    deadline, and the process remembers it."""
    conn = connections[ww.DEFAULT]
    with conn.cursor() as cursor:
        cursor.execute("CREATE SCHEMA IF NOT EXISTS aurora_sim")
        cursor.execute(
            "CREATE OR REPLACE FUNCTION aurora_sim.pg_current_wal_insert_lsn() RETURNS pg_lsn LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', "
            "MESSAGE = 'Function pg_current_wal_insert_lsn() is currently not supported for Aurora'; END $$")
        cursor.execute("SET search_path = aurora_sim, pg_catalog, public")
    try:
        before = ww._positions.wal
        RECORDS.records.clear()
        mark = ww._writer_mark()
        told = [r["level"] for r in RECORDS.records if "the writer has no WAL position" in r["message"]
                and "not supported for Aurora" in r["message"]]
        return {"before": before, "after": ww._positions.wal, "mark": mark[0], "told": told}
    finally:
        ww._positions.wal = True
        with conn.cursor() as cursor:
            cursor.execute("RESET search_path")


def replica_without_wal_position():
    """The replica answers as an Aurora reader does: the check says "not caught up" (read the writer), and
    later writes get a deadline."""
    with connections[ww.DEFAULT].cursor() as cursor:
        cursor.execute("CREATE SCHEMA IF NOT EXISTS aurora_sim")
        cursor.execute(
            "CREATE OR REPLACE FUNCTION aurora_sim.pg_last_wal_replay_lsn() RETURNS pg_lsn LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', "
            "MESSAGE = 'Function pg_last_wal_replay_lsn() is currently not supported for Aurora'; END $$")
    wait_replica()
    replica = connections[ww.REPLICA]
    replica.ensure_connection()
    with replica.cursor() as cursor:
        cursor.execute("SET search_path = aurora_sim, pg_catalog, public")
    try:
        RECORDS.records.clear()
        caught_up = ww._replayed(replica, "0/1")
        told = [r["level"] for r in RECORDS.records if "the replica has no WAL replay position" in r["message"]]
        return {"caught_up": caught_up, "wal": ww._positions.wal, "told": told, "mark": ww._writer_mark()[0]}
    finally:
        ww._positions.wal = True
        with replica.cursor() as cursor:
            cursor.execute("RESET search_path")


def set_wal_positions(available):
    ww._positions.wal = available
    return True



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

    from django.http import HttpRequest, HttpResponse

    def get_response(request):
        seen["sync_before"] = ww._wrote.get()
        ww.pin_to_writer()
        seen["sync_read"] = router.db_for_read(Item)
        return HttpResponse("sync response")

    async def aget_response(request):
        seen["async_before"] = ww._wrote.get()
        ww.pin_to_writer()
        seen["async_pinned"] = ww._wrote.get()
        return HttpResponse("async response")

    with ww.unit_of_work():
        ww.pin_to_writer()  # left over from before the request
        response = ww.ReadYourWritesMiddleware(get_response)(HttpRequest())
        seen["sync_result"] = response.content.decode()
        seen["after"] = ww._wrote.get()
    middleware = ww.ReadYourWritesMiddleware(aget_response)
    seen["async_capable"] = iscoroutinefunction(middleware)
    response = asyncio.run(middleware(HttpRequest()))
    seen["async_result"] = response.content.decode()
    # Both wrote (pin_to_writer): both responses carry the cookie with the writer's position.
    seen["cookies"] = [response.cookies["warm_web_ryw"]["max-age"], cookie_value(response.cookies["warm_web_ryw"].value)[0]]
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
                                    cache_roundtrip, browse, create_user, middleware_before_session_is_required,
                                    middleware_without_replica, bad_settings, cookie_value, lag_window,
                                    writer_without_wal_position, replica_without_wal_position, set_wal_positions)}


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
