"""CACHES from CACHE_URL against a real Redis: a view sets and gets through Django's cache, and the key is
really in Redis."""
import uuid

import pytest


def test_django_cache_uses_redis_from_cache_url(django_worker, redis_server):
    import redis

    key = "k-" + uuid.uuid4().hex[:8]
    answer = django_worker("cache_roundtrip", key=key, value="hello")
    assert answer == {"backend": "RedisCache", "redis": True, "http": {"value": "hello"},
                      "read_back": {"value": "hello"}}
    # Django's default key function makes ":1:<key>".
    client = redis.Redis(host="127.0.0.1", port=int(redis_server["WW_REDIS_PORT"]))
    assert client.exists(f":1:{key}") == 1
    assert 0 < client.ttl(f":1:{key}") <= 60


def test_cache_password_from_cache_secret_arn(django_worker, redis_server):
    """What WebCache sets: CACHE_URL with the user and no password, CACHE_SECRET_ARN with the password."""
    port = redis_server["WW_REDIS_PORT"]
    user, password = redis_server["WW_REDIS_APP_USER"], redis_server["WW_REDIS_APP_PASSWORD"]
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cache-AbCdEf"
    env = {"CACHE_URL": f"redis://{user}@127.0.0.1:{port}/0", "CACHE_SECRET_ARN": arn}
    answer = django_worker("cache_with_secret", env=env, secret=password, key="s-" + uuid.uuid4().hex[:8])
    assert answer == {"location": f"redis://127.0.0.1:{port}/0", "calls_before_use": [],
                      "calls": [["secretsmanager.get_secret_value", arn]], "value": "secret-hello", "whoami": user}
    # A JSON secret works too; a wrong password is refused by the server.
    assert django_worker("cache_with_secret", env=env, secret={"password": password}, key="j")["whoami"] == user
    with pytest.raises(AssertionError, match="WRONGPASS|invalid username-password"):
        django_worker("cache_with_secret", env=env, secret="not-the-password", key="w")
