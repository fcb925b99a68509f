"""warm_web.django.databases() / caches() from the env contract: the settings they build, the errors they
raise, and the Secrets Manager / IAM credential paths connecting for real (boto3 replaced by a recorder)."""
import pytest
from django.core.exceptions import ImproperlyConfigured

from warm_web.django import caches, databases

BASE = {"DB_ENGINE": "postgresql", "DB_WRITER_HOST": "writer.example", "DB_NAME": "app", "DB_USER": "app",
        "DB_PASSWORD": "pw"}


def env(**changes):
    result = {**BASE, **changes}
    return {k: v for k, v in result.items() if v is not None}


def test_writer_only():
    dbs = databases(environ=env())
    assert list(dbs) == ["default"]
    assert dbs["default"] == {
        "ENGINE": "django.db.backends.postgresql", "HOST": "writer.example", "PORT": "5432", "NAME": "app",
        "USER": "app", "PASSWORD": "pw", "CONN_MAX_AGE": 300, "CONN_HEALTH_CHECKS": True,
        "DISABLE_SERVER_SIDE_CURSORS": True, "OPTIONS": {"connect_timeout": 5},
    }


def test_reader_becomes_the_replica_alias_mirroring_default_in_tests():
    dbs = databases(environ=env(DB_READER_HOST="reader.example", DB_PORT="6432"))
    assert dbs["default"]["PORT"] == "6432"
    assert dbs["replica"]["HOST"] == "reader.example"
    assert dbs["replica"]["PORT"] == "6432"
    assert dbs["replica"]["TEST"] == {"MIRROR": "default"}


def test_host_port_forms():
    dbs = databases(environ=env(DB_WRITER_HOST="127.0.0.1:5433", DB_READER_HOST="[::1]:5434"))
    assert (dbs["default"]["HOST"], dbs["default"]["PORT"]) == ("127.0.0.1", "5433")
    assert (dbs["replica"]["HOST"], dbs["replica"]["PORT"]) == ("::1", "5434")
    assert databases(environ=env(DB_WRITER_HOST="[::1]"))["default"]["HOST"] == "::1"


def test_mysql_is_another_engine_and_port():
    dbs = databases(environ=env(DB_ENGINE="mysql"))
    assert (dbs["default"]["ENGINE"], dbs["default"]["PORT"]) == ("django.db.backends.mysql", "3306")


def test_overrides_apply_to_every_alias_and_merge_options():
    dbs = databases(environ=env(DB_READER_HOST="r"), CONN_MAX_AGE=None, OPTIONS={"sslmode": "verify-full"},
                    replica={"OPTIONS": {"connect_timeout": 2}})
    assert dbs["default"]["CONN_MAX_AGE"] is None and dbs["replica"]["CONN_MAX_AGE"] is None
    assert dbs["default"]["OPTIONS"] == {"connect_timeout": 5, "sslmode": "verify-full"}
    assert dbs["replica"]["OPTIONS"] == {"connect_timeout": 2, "sslmode": "verify-full"}


@pytest.mark.parametrize("changes, message", [
    ({"DB_WRITER_HOST": None}, "DB_WRITER_HOST is not set"),
    ({"DB_WRITER_HOST": "  "}, "DB_WRITER_HOST is not set"),
    ({"DB_NAME": None}, "DB_NAME is not set"),
    ({"DB_USER": None}, "DB_USER is not set"),
    ({"DB_ENGINE": "oracle"}, "DB_ENGINE must be one of postgresql, mysql, got 'oracle'"),
    ({"DB_PORT": "54x"}, "DB_PORT must be a TCP port number, got '54x'"),
    ({"DB_READER_HOST": "reader:99999"}, "DB_READER_HOST must be a TCP port number, got '99999'"),
    ({"DB_PASSWORD": None}, "set exactly one of DB_SECRET_ARN (Secrets Manager), DB_IAM_AUTH=true (IAM "
                            "authentication) or DB_PASSWORD (plain); found none of them"),
    ({"DB_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:db"}, "found DB_SECRET_ARN, DB_PASSWORD"),
    ({"DB_IAM_AUTH": "true"}, "found DB_IAM_AUTH, DB_PASSWORD"),
    ({"DB_IAM_AUTH": "maybe"}, "DB_IAM_AUTH must be true or false, got 'maybe'"),
    ({"DB_ENGINE": "mysql", "DB_PASSWORD": None, "DB_IAM_AUTH": "true"}, "DB_IAM_AUTH is supported with DB_ENGINE=postgresql only"),
])
def test_errors_name_the_variable(changes, message):
    with pytest.raises(ImproperlyConfigured) as raised:
        databases(environ=env(**changes))
    assert message in str(raised.value)


def test_iam_auth_false_is_off():
    assert databases(environ=env(DB_IAM_AUTH="false"))["default"]["PASSWORD"] == "pw"


def test_caches():
    assert caches(environ={}) == {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                              "LOCATION": "warm-web"}}
    redis = caches(environ={"CACHE_URL": "rediss://cache.example:6379/0"}, KEY_PREFIX="app")["default"]
    assert redis == {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                     "LOCATION": "rediss://cache.example:6379/0", "KEY_PREFIX": "app",
                     "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2}}
    with pytest.raises(ImproperlyConfigured, match="CACHE_URL must be a redis://, rediss:// or unix:// URL, got 'memcached://x'"):
        caches(environ={"CACHE_URL": "memcached://x"})


def test_caches_with_a_password_secret():
    arn = "arn:aws:secretsmanager:eu-west-1:1:secret:cache"
    cache = caches(environ={"CACHE_URL": "rediss://app@cache.example:6379/0", "CACHE_SECRET_ARN": arn})["default"]
    assert cache["LOCATION"] == "rediss://cache.example:6379/0"
    provider = cache["OPTIONS"]["credential_provider"]
    assert (provider.arn, provider.username) == (arn, "app")
    with pytest.raises(ImproperlyConfigured, match="CACHE_SECRET_ARN is set but CACHE_URL is not"):
        caches(environ={"CACHE_SECRET_ARN": arn})
    with pytest.raises(ImproperlyConfigured, match="CACHE_URL has a password and CACHE_SECRET_ARN is set"):
        caches(environ={"CACHE_URL": "redis://app:pw@h:6379/0", "CACHE_SECRET_ARN": arn})


def test_aws_credentials_require_tls():
    secret = databases(environ=env(DB_PASSWORD=None, DB_SECRET_ARN="arn:s"))["default"]
    assert secret["OPTIONS"] == {"connect_timeout": 5, "sslmode": "require"}
    assert repr(secret["PASSWORD"]) == "<warm_web DB_SECRET_ARN password>"
    assert databases(environ=env())["default"]["OPTIONS"] == {"connect_timeout": 5}


def _real(postgres, **changes):
    return {"DB_ENGINE": "postgresql", "DB_WRITER_HOST": "127.0.0.1", "DB_PORT": postgres["DB_PORT"],
            "DB_NAME": postgres["DB_NAME"], **changes}


def test_secret_is_fetched_once_and_connects(django_worker, postgres):
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"
    answer = django_worker("credentials", env=_real(postgres, DB_SECRET_ARN=arn),
                           secret={"username": postgres["DB_USER"], "password": postgres["DB_PASSWORD"]})
    # Two real connections, user from the secret, one Secrets Manager call.
    assert answer["calls"] == [["secretsmanager.get_secret_value", arn]]
    assert answer["seen"] == [{"user": postgres["DB_USER"], "port": int(postgres["DB_PORT"]), "ssl": True}] * 2


def test_iam_token_per_connection_over_tls(django_worker, postgres):
    answer = django_worker("credentials", env=_real(postgres, DB_IAM_AUTH="true", DB_USER=postgres["DB_USER"]),
                           token_for=postgres["DB_PASSWORD"])
    port = int(postgres["DB_PORT"])
    assert answer["options"]["sslmode"] == "require"
    assert answer["calls"] == [["rds.generate_db_auth_token", "127.0.0.1", port, postgres["DB_USER"]]] * 2
    assert answer["seen"] == [{"user": postgres["DB_USER"], "port": port, "ssl": True}] * 2


def test_only_warm_web_django_imports_django():
    """The shim's other modules stay Django-free: Django is imported only by apps that import warm_web.django."""
    import os
    import subprocess
    import sys

    runtime = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "runtime", "python")
    names = sorted(f[:-3] for f in os.listdir(os.path.join(runtime, "warm_web"))
                   if f.endswith(".py") and f not in ("django.py", "handler.py"))  # handler loads the app
    code = ("import importlib, sys\n"
            f"for name in {names!r}: importlib.import_module('warm_web.' + name if name != '__init__' else 'warm_web')\n"
            "print(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=runtime, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
