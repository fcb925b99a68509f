"""Django settings helpers and a read-replica router for apps served by warm-web.

Settings (``settings.py``)::

    from warm_web.django import allowed_hosts, caches, csrf_trusted_origins, databases

    DATABASES = databases()          # 'default' = writer, 'replica' = reader when DB_READER_HOST is set
    DATABASE_ROUTERS = ["warm_web.django.ReadReplicaRouter"]
    CACHES = caches()                # Redis at CACHE_URL, else local memory
    MIDDLEWARE = [..., "warm_web.django.ReadYourWritesMiddleware",          # before SessionMiddleware
                  "django.contrib.sessions.middleware.SessionMiddleware", ...]
    ALLOWED_HOSTS = allowed_hosts()                # WARM_WEB_ALLOWED_HOSTS
    CSRF_TRUSTED_ORIGINS = csrf_trusted_origins()  # WARM_WEB_CSRF_TRUSTED_ORIGINS

Importing this module imports Django; nothing else in ``warm_web`` does.

Environment (set by the constructs)
-----------------------------------
``DB_ENGINE``        ``postgresql`` (default) or ``mysql``.
``DB_WRITER_HOST``   writer endpoint (the RDS Proxy endpoint when there is one). Required.
``DB_READER_HOST``   reader endpoint; absent: no ``replica`` alias, every read goes to the writer.
``DB_PORT``          default 5432 (postgresql) / 3306 (mysql). A host may also be given as ``host:port``
                     (``[v6addr]:port``), which wins over ``DB_PORT`` for that endpoint: handy locally,
                     where a primary and a replica share one address.
``DB_NAME``          database name. Required.
``DB_USER``          user. Required, except with ``DB_SECRET_ARN`` (then the secret's ``username``).
Exactly one of:
``DB_SECRET_ARN``    a Secrets Manager secret (JSON with ``username``/``password``), read with boto3 the first
                     time a connection is opened, then kept for the life of the environment.
``DB_IAM_AUTH=true`` IAM database authentication: each new connection gets a fresh token from
                     ``boto3.client("rds").generate_db_auth_token(host, port, user)``; ``sslmode=require``.
``DB_PASSWORD``      a plain password (local use and tests).
``CACHE_URL``        ``rediss://host:6379/0`` (ElastiCache with TLS) or ``redis://`` locally.
``CACHE_SECRET_ARN`` optional: the cache user's password (a plain secret string, or JSON with ``password``),
                     read on first use; the user is the one in ``CACHE_URL`` (``rediss://app@host:6379/0``).
``WARM_WEB_ALLOWED_HOSTS``        comma-separated Django host patterns (``www.example.com,.cloudfront.net``):
                                  ``allowed_hosts()``; priming sends the first one as its Host.
``WARM_WEB_CSRF_TRUSTED_ORIGINS`` comma-separated origins (``https://www.example.com``): ``csrf_trusted_origins()``.

With ``DB_SECRET_ARN`` or ``DB_IAM_AUTH`` (i.e. on AWS) PostgreSQL connections use ``sslmode=require``.

A missing or malformed variable raises ``ImproperlyConfigured`` naming it.

RDS Proxy
---------
Connections are persistent (``CONN_MAX_AGE`` 300 s, below the proxy's 30 min idle-client timeout) and
health-checked at the start of each request (``CONN_HEALTH_CHECKS``), so a warm Lambda environment keeps
one connection per alias and the proxy multiplexes them. The proxy can only multiplex a client connection
between transactions while the session carries no state of its own; these *pin* the client to one database
connection until it closes:

* ``SET`` statements (``SET search_path``, ``SET ROLE`` - Django's ``OPTIONS["assume_role"]`` - and the
  ``SET TIME ZONE`` Django issues at connect when the server's ``TimeZone`` differs from Django's: keep the
  parameter group's ``timezone`` equal to Django's ``TIME_ZONE``, normally UTC);
* advisory locks (``pg_advisory_lock``), ``LISTEN``, temporary tables, ``DECLARE ... WITH HOLD`` cursors
  (Django's server-side cursors for ``QuerySet.iterator()``: disabled here with
  ``DISABLE_SERVER_SIDE_CURSORS``);
* prepared statements. Django 5.2 with psycopg 3 binds parameters client-side and sends the simple query
  protocol unless ``OPTIONS["server_side_binding"]`` is true, and passes ``prepare_threshold=None`` unless
  ``OPTIONS`` says otherwise: leave both alone. psycopg2 never prepares.

Nothing here issues any of them.

Routing (``ReadReplicaRouter``)
-------------------------------
* Writes always go to ``default``; a write is never routed to ``replica``. Migrations run on ``default`` only.
* Reads go to ``replica``, except: inside ``transaction.atomic()`` on ``default``; after this request (unit of
  work) wrote anything (read-your-writes: ``db_for_write``, and any non-``SELECT`` statement run on
  ``default``, such as raw SQL through ``django.db.connection``); and while the replica is down.
* Replica down: the read goes to the writer instead, with one warning on the ``warm_web.django`` logger per
  outage (not per query), and the replica is tried again after a back-off (``WARM_WEB_REPLICA_BACKOFF``
  setting, seconds, default 30). Both ways of failing are covered: a connection that cannot be opened (or
  fails the per-request health check) is seen when the read is routed; a persistent connection that dies
  between two queries fails that ``SELECT``, which is then run again on the writer and read from there.
* Sessions and auth read the writer: models of the apps in the ``WARM_WEB_WRITER_APPS`` setting (default
  ``["auth", "sessions"]``, which includes ``AUTH_USER_MODEL``) are never read from the replica, so a logout,
  a password change or a new login is never undone by a lagging replica. ``WARM_WEB_WRITER_APPS = []`` opts out.
* Read-your-writes is tracked in a ``contextvars.ContextVar``, which a long-lived WSGI thread (Lambda's)
  would carry from one request to the next. It is reset at the start of every request by a
  ``request_started`` receiver (WSGI, ASGI and the test client all send it); ``ReadYourWritesMiddleware``
  additionally scopes it to the request and carries it across requests (below).
  Outside requests (management commands, task queues) wrap each unit of work in ``unit_of_work()``.
* ``ATOMIC_REQUESTS`` on ``default`` puts every request in a transaction, so every read then goes to the
  writer: don't combine it with a replica.

Read-your-writes across requests (``ReadYourWritesMiddleware``)
---------------------------------------------------------------
Place it before ``SessionMiddleware`` (it raises ``ImproperlyConfigured`` otherwise: the session is saved on
the way out, and the middleware must see that write). A response to a request that wrote sets a cookie
(``WARM_WEB_RYW_COOKIE``, default ``warm_web_ryw``; signed with ``SECRET_KEY``, HttpOnly, SameSite=Lax,
Secure on HTTPS, Max-Age ``WARM_WEB_RYW_MAX_AGE``, default 30 s) holding the writer's WAL insert position
after the write (``pg_current_wal_insert_lsn()``: with ``synchronous_commit=off`` the commit may not be
flushed yet, so the flush position could still be before it). The client's next requests read the writer
until the replica has replayed that position: the first read of such a request asks the replica
(``pg_last_wal_replay_lsn() >= position``, one query, only for requests with the cookie); once it has, the
request reads the replica and the response drops the cookie. So the window is the replica's real lag, not a
constant. If the check fails, the request reads the writer. The check and the reads share the replica
connection, so they agree when ``DB_READER_HOST`` is one server (an RDS read replica); behind a reader
endpoint that spreads connections over several Aurora readers, the deadline below takes the highest lag.

Where the writer or the replica has no comparable position (Aurora PostgreSQL, whose WAL functions answer
"not supported for Aurora"; MySQL), the cookie holds a deadline instead: twice the highest reader lag
``aurora_replica_status()`` reports (``replica_lag_in_msec``, sampled at most every 5 s) plus 1 s; where
that cannot be read (MySQL), ``WARM_WEB_RYW_MAX_AGE``. Either way the window ends at the cookie's Max-Age:
a replica further behind than that serves stale reads, so alarm on replica lag well below it.
"""
from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import threading
import time
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "DEFAULT", "REPLICA", "ReadReplicaRouter", "ReadYourWritesMiddleware", "allowed_hosts", "caches",
    "csrf_trusted_origins", "databases", "pin_to_writer", "replica_status", "unit_of_work",
]

DEFAULT = "default"
REPLICA = "replica"

logger = logging.getLogger("warm_web.django")

_ENGINES = {
    "postgresql": ("django.db.backends.postgresql", 5432),
    "mysql": ("django.db.backends.mysql", 3306),
}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


# ---------------------------------------------------------------------------------------------------
# Settings from the environment
# ---------------------------------------------------------------------------------------------------

def _env(environ, name):
    value = environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _required(environ, name, what):
    value = _env(environ, name)
    if value is None:
        raise ImproperlyConfigured(f"warm_web.django: {name} is not set ({what})")
    return value


def _port(value, name):
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ImproperlyConfigured(f"warm_web.django: {name} must be a TCP port number, got {value!r}")
    return port


def _endpoint(value, name, default_port):
    """``host``, ``host:port`` or ``[v6]:port`` -> (host, port)."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ImproperlyConfigured(f"warm_web.django: {name} is not a host or [address]:port, got {value!r}")
        return host, _port(rest[1:], name) if rest else default_port
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, _port(port, name)
    return value, default_port


class _Lazy:
    """A settings value computed each time a connection is opened: psycopg (2 and 3) turns connection
    parameters into the connection string with ``str()`` once per connect."""

    __slots__ = ("_compute", "_label")

    def __init__(self, compute, label):
        self._compute = compute
        self._label = label

    def __str__(self):
        return self._compute()

    def __bool__(self):
        return True

    def __repr__(self):
        return f"<warm_web {self._label}>"

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def _boto3_client(service):
    try:
        import boto3
    except ImportError as error:  # pragma: no cover - the Lambda runtime has boto3
        raise ImproperlyConfigured(
            "warm_web.django: boto3 is needed for DB_SECRET_ARN and DB_IAM_AUTH (the Lambda Python runtime "
            "has it; pip install boto3 elsewhere)") from error
    return boto3.client(service)


class _Secret:
    """The DB_SECRET_ARN secret, fetched on first use and kept."""

    def __init__(self, arn):
        self.arn = arn
        self._value = None
        self._lock = threading.Lock()

    def get(self):
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._fetch()
        return self._value

    def _fetch(self):
        try:
            raw = _boto3_client("secretsmanager").get_secret_value(SecretId=self.arn)["SecretString"]
            value = json.loads(raw)
        except ImproperlyConfigured:
            raise
        except Exception as error:
            raise ImproperlyConfigured(
                f"warm_web.django: could not read the secret DB_SECRET_ARN={self.arn}: {error}") from error
        if not isinstance(value, dict) or not isinstance(value.get("password"), str):
            raise ImproperlyConfigured(
                f"warm_web.django: the secret DB_SECRET_ARN={self.arn} is not JSON with a 'password' string")
        return value

    def field(self, name):
        value = self.get().get(name)
        if not isinstance(value, str) or not value:
            raise ImproperlyConfigured(
                f"warm_web.django: DB_USER is not set and the secret DB_SECRET_ARN={self.arn} has no '{name}'")
        return value

    def __deepcopy__(self, memo):
        return self


_SECRETS = {}
_SECRETS_LOCK = threading.Lock()


def _secret(arn):
    with _SECRETS_LOCK:
        return _SECRETS.setdefault(arn, _Secret(arn))


_RDS = []


def _iam_token(host, port, user):
    if not _RDS:
        _RDS.append(_boto3_client("rds"))
    return _RDS[0].generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user)


def _credentials(environ, engine):
    secret_arn = _env(environ, "DB_SECRET_ARN")
    iam_raw = (environ.get("DB_IAM_AUTH") or "").strip().lower()
    if iam_raw not in _TRUE | _FALSE:
        raise ImproperlyConfigured(f"warm_web.django: DB_IAM_AUTH must be true or false, got {environ['DB_IAM_AUTH']!r}")
    chosen = [name for name, present in (
        ("DB_SECRET_ARN", secret_arn is not None),
        ("DB_IAM_AUTH", iam_raw in _TRUE),
        ("DB_PASSWORD", "DB_PASSWORD" in environ),
    ) if present]
    if len(chosen) != 1:
        found = ", ".join(chosen) if chosen else "none of them"
        raise ImproperlyConfigured(
            "warm_web.django: set exactly one of DB_SECRET_ARN (Secrets Manager), DB_IAM_AUTH=true (IAM "
            f"authentication) or DB_PASSWORD (plain); found {found}")
    kind = chosen[0]
    user = _env(environ, "DB_USER")
    if kind == "DB_SECRET_ARN":
        secret = _secret(secret_arn)
        if engine != "postgresql":
            # mysqlclient wants real strings: read the secret now.
            return user or secret.field("username"), secret.field("password"), kind
        return (user or _Lazy(lambda: secret.field("username"), "DB_SECRET_ARN username"),
                _Lazy(lambda: secret.field("password"), "DB_SECRET_ARN password"), kind)
    if user is None:
        raise ImproperlyConfigured(f"warm_web.django: DB_USER is not set (the database user; required with {kind})")
    if kind == "DB_IAM_AUTH":
        if engine != "postgresql":
            raise ImproperlyConfigured("warm_web.django: DB_IAM_AUTH is supported with DB_ENGINE=postgresql only")
        return user, None, kind
    return user, environ["DB_PASSWORD"], kind


def _merge(base, overrides):
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def databases(*, environ=None, default=None, replica=None, **overrides):
    """Django ``DATABASES`` from the environment: ``default`` (writer) and, when ``DB_READER_HOST`` is set,
    ``replica`` (reader; ``TEST["MIRROR"] = "default"``, so Django's test runner reads the writer).

    Keyword arguments override settings on every alias (dict values such as ``OPTIONS`` are merged one level
    deep): ``databases(CONN_MAX_AGE=None, OPTIONS={"sslrootcert": "/opt/rds-ca.pem"})``. ``default={...}`` and
    ``replica={...}`` override one alias only. ``environ`` defaults to ``os.environ``.
    """
    environ = os.environ if environ is None else environ
    engine_name = (_env(environ, "DB_ENGINE") or "postgresql").lower()
    if engine_name not in _ENGINES:
        raise ImproperlyConfigured(
            f"warm_web.django: DB_ENGINE must be one of {', '.join(_ENGINES)}, got {environ.get('DB_ENGINE')!r}")
    engine, engine_port = _ENGINES[engine_name]
    default_port = _port(_env(environ, "DB_PORT"), "DB_PORT") if _env(environ, "DB_PORT") else engine_port
    writer = _endpoint(_required(environ, "DB_WRITER_HOST", "the writer endpoint, e.g. the RDS Proxy endpoint"),
                       "DB_WRITER_HOST", default_port)
    reader_raw = _env(environ, "DB_READER_HOST")
    reader = _endpoint(reader_raw, "DB_READER_HOST", default_port) if reader_raw else None
    name = _required(environ, "DB_NAME", "the database name")
    user, password, kind = _credentials(environ, engine_name)

    def alias(host, port):
        options = {"connect_timeout": 5}
        if engine_name == "postgresql" and kind != "DB_PASSWORD":
            # On AWS (RDS Proxy requires TLS): encrypted, never a plaintext fallback.
            options["sslmode"] = "require"
        if kind == "DB_IAM_AUTH":
            alias_password = _Lazy(lambda: _iam_token(host, port, user), "IAM auth token")
        else:
            alias_password = password
        return {
            "ENGINE": engine,
            "HOST": host,
            "PORT": str(port),
            "NAME": name,
            "USER": user,
            "PASSWORD": alias_password,
            "CONN_MAX_AGE": 300,
            "CONN_HEALTH_CHECKS": True,
            "DISABLE_SERVER_SIDE_CURSORS": True,
            "OPTIONS": options,
        }

    result = {DEFAULT: _merge(alias(*writer), overrides)}
    if default:
        _merge(result[DEFAULT], default)
    if reader:
        result[REPLICA] = _merge(alias(*reader), overrides)
        result[REPLICA]["TEST"] = {**result[REPLICA].get("TEST", {}), "MIRROR": DEFAULT}
        if replica:
            _merge(result[REPLICA], replica)
    return result


class _CacheCredentials:
    """A redis-py credential provider: the user from CACHE_URL, the password from the CACHE_SECRET_ARN secret
    (a plain string, or JSON with ``password``), read when the first connection is opened, then kept."""

    def __init__(self, arn, username):
        self.arn = arn
        self.username = username
        self._password = None
        self._lock = threading.Lock()

    def get_credentials(self):
        if self._password is None:
            with self._lock:
                if self._password is None:
                    self._password = self._fetch()
        return (self.username, self._password) if self.username else (self._password,)

    def _fetch(self):
        try:
            raw = _boto3_client("secretsmanager").get_secret_value(SecretId=self.arn)["SecretString"]
        except ImproperlyConfigured:
            raise
        except Exception as error:
            raise ImproperlyConfigured(
                f"warm_web.django: could not read the secret CACHE_SECRET_ARN={self.arn}: {error}") from error
        try:
            value = json.loads(raw)
        except ValueError:
            return raw
        if isinstance(value, dict) and isinstance(value.get("password"), str):
            return value["password"]
        return raw

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def _credential_provider(arn, username):
    """A ``redis.credentials.CredentialProvider`` when redis-py has the class (it does from 4.4)."""
    try:
        from redis.credentials import CredentialProvider
    except ImportError:  # pragma: no cover
        return _CacheCredentials(arn, username)
    provider_class = type("CacheSecretCredentials", (_CacheCredentials, CredentialProvider), {})
    return provider_class(arn, username)


def caches(*, environ=None, **overrides):
    """Django ``CACHES``: ``RedisCache`` at ``CACHE_URL`` (``redis://``, ``rediss://`` or ``unix://``) with
    short socket timeouts, or a local-memory cache when ``CACHE_URL`` is not set. With ``CACHE_SECRET_ARN``
    (what ``WebCache`` sets: ``CACHE_URL=rediss://app@host:6379/0`` without a password), the password comes
    from that secret, read with boto3 when the first connection is opened. Keyword arguments override the
    ``default`` cache's settings (``OPTIONS`` merged)."""
    environ = os.environ if environ is None else environ
    url = _env(environ, "CACHE_URL")
    secret_arn = _env(environ, "CACHE_SECRET_ARN")
    if url is None:
        if secret_arn is not None:
            raise ImproperlyConfigured("warm_web.django: CACHE_SECRET_ARN is set but CACHE_URL is not")
        default = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "warm-web"}
        return {"default": _merge(default, overrides)}
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(
            f"warm_web.django: CACHE_URL must be a redis://, rediss:// or unix:// URL, got {url!r}")
    options = {"socket_connect_timeout": 2, "socket_timeout": 2}
    if secret_arn is not None:
        from urllib.parse import unquote, urlsplit, urlunsplit

        parts = urlsplit(url)
        if parts.password:
            raise ImproperlyConfigured(
                "warm_web.django: CACHE_URL has a password and CACHE_SECRET_ARN is set; use one or the other")
        # redis-py refuses a user in the URL alongside a credential provider: the provider gives both.
        netloc = parts.netloc.rpartition("@")[2]
        username = unquote(parts.username) if parts.username else None
        url = urlunsplit(parts._replace(netloc=netloc))
        options["credential_provider"] = _credential_provider(secret_arn, username)
    default = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "OPTIONS": options,
    }
    return {"default": _merge(default, overrides)}


# Django host patterns: a name, a leading-dot subdomain wildcard, an IPv6 address in brackets, or "*".
_HOST_PATTERN = re.compile(r"\*|\.?[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\]")
_ORIGIN = re.compile(r"https?://(?:\*\.)?(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


def _list(environ, name, pattern, what):
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return None
    entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
    for entry in entries:
        if not pattern.fullmatch(entry):
            raise ImproperlyConfigured(f"warm_web.django: {name} entry {entry!r} is not {what} (in {raw!r})")
    return entries


def allowed_hosts(*, environ=None, default=()):
    """Django ``ALLOWED_HOSTS`` from ``WARM_WEB_ALLOWED_HOSTS`` (comma-separated host patterns, as the
    constructs set it: ``www.example.com,.cloudfront.net``), or ``default`` when it is not set."""
    environ = os.environ if environ is None else environ
    hosts = _list(environ, "WARM_WEB_ALLOWED_HOSTS", _HOST_PATTERN,
                  "a Django host pattern (www.example.com, .example.com for subdomains, or *)")
    return list(default) if hosts is None else hosts


def csrf_trusted_origins(*, environ=None, default=()):
    """Django ``CSRF_TRUSTED_ORIGINS`` from ``WARM_WEB_CSRF_TRUSTED_ORIGINS`` (comma-separated origins:
    ``https://www.example.com,https://*.example.org``), or ``default`` when it is not set."""
    environ = os.environ if environ is None else environ
    origins = _list(environ, "WARM_WEB_CSRF_TRUSTED_ORIGINS", _ORIGIN,
                    "an origin (scheme://host[:port], e.g. https://www.example.com)")
    return list(default) if origins is None else origins


# ---------------------------------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------------------------------

# True once the current unit of work (request) has written: its later reads go to the writer.
_wrote = contextvars.ContextVar("warm_web_wrote", default=False)
# The request's read-your-writes cookie (a _Follow), if it carries one.
_follow = contextvars.ContextVar("warm_web_follow", default=None)

# Statements that run on the writer without making it a write.
_READ_STATEMENTS = ("SELECT", "SAVEPOINT", "RELEASE", "ROLLBACK", "SHOW", "EXPLAIN")


class _ReplicaHealth:
    """Process-wide: is the replica down, and when to try it again."""

    def __init__(self):
        self.down = False
        self.retry_at = 0.0
        self.outages = 0
        self.backoff = 30.0
        self._lock = threading.Lock()

    def mark_down(self, error):
        with self._lock:
            self.retry_at = time.monotonic() + self.backoff
            if self.down:
                return
            self.down = True
            self.outages += 1
        logger.warning(
            "warm-web: read replica unreachable (%s); reads go to the writer, retrying every %gs",
            _describe(error), self.backoff)

    def mark_up(self):
        with self._lock:
            was_down, self.down = self.down, False
        if was_down:
            logger.debug("warm-web: read replica reachable again; reads go to it")


_health = _ReplicaHealth()


def _describe(error):
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def replica_status():
    """``{"down": bool, "outages": int, "retryInSeconds": float}`` for this process."""
    return {
        "down": _health.down,
        "outages": _health.outages,
        "retryInSeconds": max(0.0, _health.retry_at - time.monotonic()) if _health.down else 0.0,
    }


@contextmanager
def unit_of_work():
    """A fresh read-your-writes scope (what a request gets): writes inside it send its later reads to the
    writer; on exit the previous state comes back. For management commands, task-queue jobs and the like."""
    token = _wrote.set(False)
    follow_token = _follow.set(None)
    try:
        yield
    finally:
        _reset(token, follow_token)


def pin_to_writer():
    """Send the rest of the current unit of work's reads to the writer (e.g. after a write the router
    cannot see); in a request with ``ReadYourWritesMiddleware``, the client's next requests too, until the
    replica has caught up."""
    _wrote.set(True)


def _reset(token, follow_token=None):
    try:
        _wrote.reset(token)
    except ValueError:  # reset from another context (a response streamed elsewhere): just clear it
        _wrote.set(False)
    if follow_token is not None:
        try:
            _follow.reset(follow_token)
        except ValueError:
            _follow.set(None)


def _close_quietly(conn):
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - the connection is being dropped because it is broken
        conn.connection = None


def _is_broken(conn):
    raw = conn.connection
    if raw is None or getattr(raw, "closed", False) or getattr(raw, "broken", False):
        return True
    try:
        return not conn.is_usable()
    except Exception:  # noqa: BLE001
        return True


def _first_word(sql):
    # Composed SQL objects (psycopg.sql) have no first word we can trust: treated as writes.
    return sql.lstrip(" \t\r\n(")[:9].upper() if isinstance(sql, str) else ""


def _replica_failover(execute, sql, params, many, context):
    """Execute wrapper on replica connections: a SELECT whose connection died is run again on the writer,
    and the caller reads the rows from the writer's cursor."""
    try:
        return execute(sql, params, many, context)
    except _RETRYABLE as error:
        conn = context["connection"]
        if many or conn.in_atomic_block or not _first_word(sql).startswith("SELECT") or not _is_broken(conn):
            raise
        _close_quietly(conn)
        _health.mark_down(error)
        writer = _connections()[DEFAULT].cursor()
        result = writer.execute(sql, params)
        context["cursor"].cursor = writer.cursor
        return result


def _writer_watch(execute, sql, params, many, context):
    """Execute wrapper on writer connections: any statement that is not a read (raw SQL included) makes the
    current unit of work read its writes."""
    if not _wrote.get() and not _first_word(sql).startswith(_READ_STATEMENTS):
        _wrote.set(True)
    return execute(sql, params, many, context)


def _on_connection_created(sender, connection, **kwargs):
    wrapper = {DEFAULT: _writer_watch, REPLICA: _replica_failover}.get(connection.alias)
    if wrapper is not None and wrapper not in connection.execute_wrappers:
        # First in the list (the outermost): the connection may be opened inside someone's
        # `with connection.execute_wrapper(w):`, whose exit pops the last wrapper.
        connection.execute_wrappers.insert(0, wrapper)


def _on_request_started(sender, **kwargs):
    _wrote.set(False)
    _follow.set(None)


# Settings read on every routing decision, kept until a test changes them (setting_changed).
_SETTINGS_CACHE = {}
_SETTING_DEFAULTS = {
    "WARM_WEB_WRITER_APPS": ("auth", "sessions"),
    "WARM_WEB_RYW_COOKIE": "warm_web_ryw",
    "WARM_WEB_RYW_MAX_AGE": 30,
}


def _setting(name):
    try:
        return _SETTINGS_CACHE[name]
    except KeyError:
        pass
    from django.conf import settings

    value = getattr(settings, name, _SETTING_DEFAULTS[name])
    if name == "WARM_WEB_WRITER_APPS":
        if isinstance(value, str) or not all(isinstance(app, str) for app in value):
            raise ImproperlyConfigured(
                f"warm_web.django: WARM_WEB_WRITER_APPS must be a list of app labels, got {value!r}")
        labels = frozenset(value)
        user_model = str(getattr(settings, "AUTH_USER_MODEL", "auth.User")).lower()
        value = (labels, frozenset([user_model]) if "auth" in labels else frozenset())
    elif name == "WARM_WEB_RYW_MAX_AGE":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 3600:
            raise ImproperlyConfigured(
                f"warm_web.django: WARM_WEB_RYW_MAX_AGE must be a number of seconds from 1 to 3600, got {value!r}")
    elif not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise ImproperlyConfigured(f"warm_web.django: WARM_WEB_RYW_COOKIE must be a cookie name, got {value!r}")
    _SETTINGS_CACHE[name] = value
    return value


def _on_setting_changed(sender, setting, **kwargs):
    if setting in _SETTING_DEFAULTS or setting == "AUTH_USER_MODEL":
        _SETTINGS_CACHE.clear()


def _reads_writer(model):
    """Models of WARM_WEB_WRITER_APPS (sessions and auth by default) are always read on the writer."""
    if model is None:
        return False
    apps, models = _setting("WARM_WEB_WRITER_APPS")
    meta = model._meta
    return meta.app_label in apps or meta.label_lower in models


# ---------------------------------------------------------------------------------------------------
# Read-your-writes across requests
# ---------------------------------------------------------------------------------------------------

_SIGNING_SALT = "warm_web.django.read-your-writes"


def _signer():
    from django.core.signing import TimestampSigner

    return TimestampSigner(salt=_SIGNING_SALT)


class _Follow:
    """What a request's cookie says: the writer's position (``L<lsn>``) or a deadline (``T<epoch ms>``) its
    client last wrote at; ``caught_up`` once asked (at most once per request)."""

    __slots__ = ("lsn", "until", "valid", "caught_up")

    def __init__(self, lsn=None, until=None, valid=True):
        self.lsn = lsn
        self.until = until
        self.valid = valid
        self.caught_up = None

    @classmethod
    def from_cookie(cls, raw):
        from django.core.signing import BadSignature

        try:
            value = _signer().unsign(raw, max_age=_setting("WARM_WEB_RYW_MAX_AGE"))
        except BadSignature:  # forged, from another SECRET_KEY, or older than Max-Age
            return cls(valid=False)
        if value.startswith("L") and re.fullmatch(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}", value[1:]):
            return cls(lsn=value[1:])
        if value.startswith("T") and value[1:].isdigit():
            return cls(until=int(value[1:]) / 1000)
        return cls(valid=False)

    def replica_has_it(self, conn):
        if not self.valid:
            return True
        if self.caught_up is None:
            self.caught_up = _replayed(conn, self.lsn) if self.lsn is not None else time.time() >= self.until
        return self.caught_up


def _sqlstate(error):
    cause = error.__cause__ or error
    return getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)


def _replayed(conn, lsn):
    """Has the replica replayed the writer's position ``lsn``? False when it cannot say."""
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn])
            row = cursor.fetchone()
    except Exception as error:  # noqa: BLE001 - any doubt means: read the writer
        if _sqlstate(error) in _NO_POSITION and _positions.wal:
            # A reader without WAL positions (Aurora): later writes get a deadline instead.
            _positions.wal = False
            logger.info("warm-web: the replica has no WAL replay position (%s); read-your-writes uses the "
                        "replica lag instead", _describe(error))
        else:
            logger.debug("warm-web: replica replay position unknown (%s); reading the writer", _describe(error))
        return False
    return bool(row and row[0])


class _Positions:
    """Process-wide: does the writer have a WAL position to compare (not on Aurora), and the last lag read."""

    def __init__(self):
        self.wal = True
        self.lag_window = None
        self.lag_read_at = 0.0


_positions = _Positions()
# feature_not_supported (Aurora answers its WAL functions with "... is currently not supported for Aurora"),
# undefined_function.
_NO_POSITION = {"0A000", "42883"}
_LAG_SAMPLE_SECONDS = 5.0


def _writer_mark():
    """The cookie value for a request that wrote: the writer's position, or a deadline where there is none."""
    conn = _connections()[DEFAULT]
    cap = _setting("WARM_WEB_RYW_MAX_AGE")
    if conn.vendor != "postgresql":
        return f"T{int((time.time() + cap) * 1000)}"
    if _positions.wal:
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
                return "L" + cursor.fetchone()[0]
        except Exception as error:  # noqa: BLE001
            if _sqlstate(error) in _NO_POSITION:
                _positions.wal = False
                logger.info("warm-web: the writer has no WAL position (%s); read-your-writes uses the "
                            "replica lag instead", _describe(error))
            else:
                return f"T{int((time.time() + cap) * 1000)}"
    return f"T{int((time.time() + _lag_window(conn, cap)) * 1000)}"


def _lag_window(conn, cap):
    """Twice the highest reader lag Aurora reports, plus 1 s, capped; the cap when it cannot be read."""
    now = time.monotonic()
    if _positions.lag_window is None or now - _positions.lag_read_at >= _LAG_SAMPLE_SECONDS:
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT max(replica_lag_in_msec) FROM aurora_replica_status() "
                               "WHERE session_id <> 'MASTER_SESSION_ID'")
                lag_ms = cursor.fetchone()[0]
            window = cap if lag_ms is None else 2 * float(lag_ms) / 1000 + 1
        except Exception as error:  # noqa: BLE001
            logger.debug("warm-web: replica lag unknown (%s)", _describe(error))
            window = cap
        _positions.lag_window, _positions.lag_read_at = window, now
    return min(cap, _positions.lag_window)


def _follow_from(request):
    raw = request.COOKIES.get(_setting("WARM_WEB_RYW_COOKIE"))
    return _Follow.from_cookie(raw) if raw else None


def _finish(request, response):
    """Set the cookie after a write; drop it once the replica caught up (or when it is not ours)."""
    name = _setting("WARM_WEB_RYW_COOKIE")
    follow = _follow.get()
    if _wrote.get():
        mark = _writer_mark()
        if mark.startswith("T") and follow is not None and follow.valid and follow.until is not None:
            mark = f"T{max(int(mark[1:]), int(follow.until * 1000))}"
        response.set_cookie(name, _signer().sign(mark), max_age=_setting("WARM_WEB_RYW_MAX_AGE"),
                            secure=request.is_secure(), httponly=True, samesite="Lax")
    elif follow is not None and (not follow.valid or follow.caught_up):
        response.delete_cookie(name, samesite="Lax")


_installed = []
_RETRYABLE = ()


def _connections():
    from django.db import connections

    return connections


def _install():
    """Connect the signal receivers once (at the first router or middleware construction)."""
    global _RETRYABLE
    if _installed:
        return
    from django.core.signals import request_started
    from django.db import InterfaceError, OperationalError
    from django.db.backends.signals import connection_created

    from django.core.signals import setting_changed

    _RETRYABLE = (OperationalError, InterfaceError)
    connection_created.connect(_on_connection_created, dispatch_uid="warm_web.django.connection_created")
    request_started.connect(_on_request_started, dispatch_uid="warm_web.django.request_started")
    setting_changed.connect(_on_setting_changed, dispatch_uid="warm_web.django.setting_changed")
    # Connections opened before the receivers were connected (e.g. by a check at startup).
    for conn in _connections().all(initialized_only=True):
        if conn.connection is not None:
            _on_connection_created(None, conn)
    _installed.append(True)


class ReadReplicaRouter:
    """``DATABASE_ROUTERS = ["warm_web.django.ReadReplicaRouter"]``: reads to ``replica``, writes to
    ``default``, with read-your-writes (within a request, and across requests with
    ``ReadYourWritesMiddleware``), sessions and auth on the writer, atomic blocks on the writer, and fallback
    to the writer while the replica is down (see the module docstring)."""

    def __init__(self):
        from django.conf import settings

        _install()
        self._connections = _connections()
        self._has_replica = REPLICA in settings.DATABASES
        _health.backoff = float(getattr(settings, "WARM_WEB_REPLICA_BACKOFF", 30.0))

    def db_for_read(self, model, **hints):
        if not self._has_replica or _wrote.get() or _reads_writer(model):
            return DEFAULT
        health = _health
        if health.down and time.monotonic() < health.retry_at:
            return DEFAULT
        connections = self._connections
        if connections[DEFAULT].in_atomic_block:
            return DEFAULT
        conn = connections[REPLICA]
        if (conn.connection is None or not conn.health_check_done or health.down) and not self._ready(conn):
            return DEFAULT
        follow = _follow.get()
        if follow is not None and not follow.replica_has_it(conn):
            return DEFAULT
        return REPLICA

    def db_for_write(self, model, **hints):
        if not _wrote.get():
            _wrote.set(True)
        return DEFAULT

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT

    def _ready(self, conn):
        """Make sure the replica connection is open and usable (once per request, as Django's own health
        check would); on failure mark the replica down."""
        try:
            if conn.connection is not None and (_health.down or conn.health_check_enabled) and not conn.is_usable():
                conn.close()
            conn.ensure_connection()
            conn.health_check_done = True
        except Exception as error:  # noqa: BLE001 - any failure to reach the replica means: use the writer
            _close_quietly(conn)
            _health.mark_down(error)
            return False
        if _health.down:
            _health.mark_up()
        return True


_SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"


class ReadYourWritesMiddleware:
    """Read-your-writes for the request, and across requests: after a request wrote, the client's next
    requests read the writer until the replica has replayed that write (see the module docstring). Place it
    before ``SessionMiddleware``. Sync and async."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction
        from django.conf import settings

        _install()
        middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
        mine = f"{__name__}.{type(self).__name__}"
        if mine in middleware and _SESSION_MIDDLEWARE in middleware and \
                middleware.index(_SESSION_MIDDLEWARE) < middleware.index(mine):
            raise ImproperlyConfigured(
                f"warm_web.django: {mine} must come before {_SESSION_MIDDLEWARE} in MIDDLEWARE (the session is "
                f"saved on the way out, and a login's session write must be seen), got MIDDLEWARE={middleware!r}")
        for name in _SETTING_DEFAULTS:
            _setting(name)  # a bad value fails at startup, not at the first request
        # Without a replica every read is on the writer already: no cookie, no position query.
        self._across_requests = REPLICA in settings.DATABASES
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self._async:
            return self._acall(request)
        token = _wrote.set(False)
        follow_token = _follow.set(_follow_from(request) if self._across_requests else None)
        try:
            response = self.get_response(request)
            if self._across_requests:
                _finish(request, response)
            return response
        finally:
            _reset(token, follow_token)

    async def _acall(self, request):
        from asgiref.sync import sync_to_async

        token = _wrote.set(False)
        follow_token = _follow.set(_follow_from(request) if self._across_requests else None)
        try:
            response = await self.get_response(request)
            if self._across_requests:
                # The writer's position is a database query: off the event loop, as Django runs the ORM.
                await sync_to_async(_finish)(request, response)
            return response
        finally:
            _reset(token, follow_token)
