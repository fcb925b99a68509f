"""examples/django-full, run as Lambda runs it: the shim imports the guestbook during INIT, with the env
contract WarmWebStack sets pointing at a real PostgreSQL primary + streaming replica and a real Redis."""
import json
import os
import time

from eventshapes import Spec, function_url
from lambdatest import ROOT
from shimprocess import run

APP_DIR = os.path.join(ROOT, "examples", "django-full", "app")

# Runs after the handler's import (INIT): the tables, and a check that reads really go to the replica.
BEFORE = """
from django.core.management import call_command
from django.db import router
from guestbook.models import Entry
from warm_web.django import unit_of_work
with unit_of_work():  # the migration's writes pin only its own reads to the writer
    call_command("migrate", verbosity=0, interactive=False)
assert router.db_for_read(Entry) == "replica", router.db_for_read(Entry)
assert router.db_for_write(Entry) == "default", router.db_for_write(Entry)
"""
# A "CALL" event: drop the cached list, so the next read goes to the database, once the replica has replayed
# everything the primary wrote (replication is asynchronous: right after a write it may lag by milliseconds).
DROP_CACHE = """
import time
from django.core.cache import cache
from django.db import connections
cache.delete("guestbook:latest")
with connections["default"].cursor() as cursor:
    # The insert position: the test server commits asynchronously, so the commit may not be written yet.
    cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
    lsn = cursor.fetchone()[0]
deadline = time.monotonic() + 10
with connections["replica"].cursor() as cursor:
    while True:
        cursor.execute("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn])
        standby, caught_up = cursor.fetchone()
        assert standby, "the replica alias reached a server that is not a standby"
        if caught_up:
            break
        assert time.monotonic() < deadline, "the replica did not catch up within 10 s"
        time.sleep(0.01)
"""


def _event(method, path, body=None, n=0):
    spec = Spec(method=method, path=path, headers={"content-type": "application/json"} if body else {},
                body=json.dumps(body).encode() if body else b"")
    return function_url(spec, request_id=f"req-{n}")


def _invoke(postgres, redis_server, events):
    env = {k: v for k, v in {**postgres, **redis_server}.items() if not k.startswith("WW_")}
    result = run("guestbook.wsgi:application", "wsgi", events, task_root=APP_DIR, pythonpath=[APP_DIR],
                 env={**env, "DJANGO_SETTINGS_MODULE": "guestbook.settings"}, before=BEFORE, call=DROP_CACHE)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(tag == "RESULT" for tag, _ in result.results), result.results
    return [answer["result"] for _, answer in result.results]


def _json(response):
    return json.loads(response["body"])


def test_guestbook_writes_to_the_primary_reads_the_replica_and_caches_in_redis(postgres, redis_server):
    name = f"visitor-{time.time_ns()}"
    warm, health, posted, cached, read = _invoke(postgres, redis_server, [
        {"warmWeb": {"v": 1, "round": "r1", "expected": 1, "holdUntilMs": 0}},
        _event("GET", "/health", n=1),
        _event("POST", "/entries/", {"name": name, "message": "hello from the test"}, n=2),
        _event("GET", "/entries/", n=3),
        "CALL",
        _event("GET", "/entries/", n=4),
    ])
    assert warm["warmWeb"]["round"] == "r1" and warm["warmWeb"]["environmentId"]  # the shim answered, not the app
    assert health["statusCode"] == 200 and _json(health) == {"ok": True}

    assert posted["statusCode"] == 201, posted
    entry = _json(posted)
    assert entry["name"] == name and entry["id"] > 0

    # The write refreshed the cache from the writer: the next read is a hit that already has the entry.
    assert cached["statusCode"] == 200 and cached["headers"]["x-cache"] == "hit"
    assert _json(cached)["entries"][0] == entry

    # With the cache dropped, the list comes from the replica (streaming: it has the entry by now).
    assert read["headers"]["x-cache"] == "miss"
    assert entry in _json(read)["entries"]


def test_guestbook_rejects_a_bad_entry_with_a_clear_error(postgres, redis_server):
    bad, not_json, wrong_method = _invoke(postgres, redis_server, [
        _event("POST", "/entries/", {"name": "", "message": "x"}, n=1),
        function_url(Spec(method="POST", path="/entries/", body=b"{not json"), request_id="req-2"),
        _event("DELETE", "/entries/", n=3),
    ])
    assert bad["statusCode"] == 400 and "name (1-100 characters)" in _json(bad)["error"]
    assert not_json["statusCode"] == 400 and _json(not_json)["error"] == "the body must be JSON"
    assert wrong_method["statusCode"] == 405
