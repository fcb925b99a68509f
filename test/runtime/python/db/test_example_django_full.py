"""examples/django-full, run as Lambda runs it: the shim imports the site during INIT, with the env contract
WarmWebStack sets pointing at a real PostgreSQL primary + streaming replica and a real Redis. The JSON API
through shimprocess.run; the site (admin, login, sessions, CSRF, a form that writes and redirects, static
files through WhiteNoise) as a browser drives it, one event at a time through shimdriver.py, with the
replica's replay paused."""
import base64
import json
import os
import re
import select
import subprocess
import sys
import time
import uuid
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

import pytest

from eventshapes import URL_HOST, Spec, function_url
from lambdatest import ROOT
from shimprocess import run

APP_DIR = os.path.join(ROOT, "examples", "django-full", "app")
HERE = os.path.dirname(os.path.abspath(__file__))
# Debian's python3-whitenoise (scripts/setup.sh), put on the path alone: the mirror has no whitenoise wheel.
DEBIAN_WHITENOISE = "/usr/lib/python3/dist-packages/whitenoise"
SITE = "https://guestbook.example.com"


def _unavailable(message):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def whitenoise_path(tmp_path_factory):
    """A directory holding only the whitenoise package, for PYTHONPATH ([] when the venv has it)."""
    import importlib.util

    if importlib.util.find_spec("whitenoise") is not None:
        return []
    if not os.path.isdir(DEBIAN_WHITENOISE):
        _unavailable(f"whitenoise is not installed ({DEBIAN_WHITENOISE} missing; apt-get install python3-whitenoise)")
    directory = tmp_path_factory.mktemp("whitenoise-only")
    os.symlink(DEBIAN_WHITENOISE, directory / "whitenoise")
    return [str(directory)]


def _site_env(postgres, redis_server, whitenoise_path, static_root=None, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARM_WEB", "DJANGO", "AWS_LAMBDA", "WW_"))}
    env.update({k: v for k, v in {**postgres, **redis_server}.items() if not k.startswith("WW_")})
    env.update({"DJANGO_SETTINGS_MODULE": "guestbook.settings",
                "PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "runtime", "python"), APP_DIR, *whitenoise_path])})
    if static_root:
        env["DJANGO_STATIC_ROOT"] = static_root
    env.update(extra)
    return env


def _manage(env, *args):
    proc = subprocess.run([sys.executable, os.path.join(APP_DIR, "manage.py"), *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"manage.py {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def static_root(postgres, redis_server, whitenoise_path, tmp_path_factory):
    """collectstatic, as packaging runs it: hashed names and the manifest."""
    root = str(tmp_path_factory.mktemp("staticfiles"))
    _manage(_site_env(postgres, redis_server, whitenoise_path, root), "collectstatic", "--noinput", "-v0")
    return root

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


def _invoke(postgres, redis_server, events, whitenoise_path=(), static_root=None):
    env = {k: v for k, v in {**postgres, **redis_server}.items() if not k.startswith("WW_")}
    env.update({"DJANGO_SETTINGS_MODULE": "guestbook.settings", "DJANGO_STATIC_ROOT": static_root or ""})
    result = run("guestbook.wsgi:application", "wsgi", events, task_root=APP_DIR,
                 pythonpath=[APP_DIR, *whitenoise_path], env=env, before=BEFORE, call=DROP_CACHE)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(tag == "RESULT" for tag, _ in result.results), result.results
    return [answer["result"] for _, answer in result.results]


def _json(response):
    return json.loads(response["body"])


def test_guestbook_writes_to_the_primary_reads_the_replica_and_caches_in_redis(postgres, redis_server, whitenoise_path,
                                                                              static_root):
    name = f"visitor-{time.time_ns()}"
    warm, health, posted, cached, read = _invoke(postgres, redis_server, whitenoise_path=whitenoise_path,
                                                 static_root=static_root, events=[
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


def test_guestbook_rejects_a_bad_entry_with_a_clear_error(postgres, redis_server, whitenoise_path, static_root):
    bad, not_json, wrong_method = _invoke(postgres, redis_server, whitenoise_path=whitenoise_path,
                                          static_root=static_root, events=[
        _event("POST", "/entries/", {"name": "", "message": "x"}, n=1),
        function_url(Spec(method="POST", path="/entries/", body=b"{not json"), request_id="req-2"),
        _event("DELETE", "/entries/", n=3),
    ])
    assert bad["statusCode"] == 400 and "name (1-100 characters)" in _json(bad)["error"]
    assert not_json["statusCode"] == 400 and _json(not_json)["error"] == "the body must be JSON"
    assert wrong_method["statusCode"] == 405


# ---------------------------------------------------------------------------------------------------
# The site, as a browser drives it
# ---------------------------------------------------------------------------------------------------

class Lambda:
    """One Lambda environment running the site (shimdriver.py): INIT at start, then one event at a time."""

    def __init__(self, env, stderr_path):
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "w")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "shimdriver.py")], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        assert self._read(120) == {"ready": True}, self.stderr()

    def _read(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"the shim did not answer within {timeout}s:\n{self.stderr()}"
        line = self.proc.stdout.readline()
        assert line, f"the shim exited ({self.proc.poll()}):\n{self.stderr()}"
        return json.loads(line)

    def _send(self, command):
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        answer = self._read(60)
        assert answer["ok"], f"{answer['error']}\n{answer['traceback']}"
        return answer["result"]

    def invoke(self, event):
        return self._send({"event": event})

    def stderr(self):
        self._stderr.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._stderr.close()


class Browser:
    """A browser on SITE (the CDN's domain) whose requests reach the function URL: Host is the function URL's,
    Origin the site's, cookies kept across events."""

    def __init__(self, function):
        self.function = function
        self.jar = {}
        self.n = 0

    def request(self, method, target, form=None, origin=SITE, follow=True):
        history = []
        while True:
            path, _, query = target.partition("?")
            headers = {"host": URL_HOST}
            body = b""
            if method == "POST":
                headers["origin"] = origin
                headers["content-type"] = "application/x-www-form-urlencoded"
                body = urlencode(form or {}).encode()
            self.n += 1
            event = function_url(Spec(method=method, path=path, query=query, headers=headers,
                                      cookies=[f"{k}={v}" for k, v in self.jar.items()], body=body),
                                 request_id=f"browser-{self.n}")
            response = self.function.invoke(event)
            raw = response.get("body") or ""
            response["text"] = base64.b64decode(raw).decode() if response.get("isBase64Encoded") else raw
            response["set"], response["deleted"] = [], []
            for header in response.get("cookies", []):
                for morsel in SimpleCookie(header).values():
                    if morsel["max-age"] == "0" or "1970" in morsel["expires"]:
                        self.jar.pop(morsel.key, None)
                        response["deleted"].append(morsel.key)
                    else:
                        self.jar[morsel.key] = morsel.value
                        response["set"].append(morsel.key)
            history.append(response)
            location = response["headers"].get("location")
            if not (follow and response["statusCode"] in (301, 302, 303) and location):
                response["history"] = history[:-1]
                return response
            target = urlsplit(location).path + ("?" + urlsplit(location).query if urlsplit(location).query else "")
            method, form = "GET", None

    @staticmethod
    def csrf_token(page):
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page["text"])
        assert match, page["text"][:2000]
        return match.group(1)


@pytest.fixture
def site(postgres, redis_server, whitenoise_path, static_root, tmp_path):
    env = _site_env(postgres, redis_server, whitenoise_path, static_root)
    _manage(env, "migrate", "--noinput", "-v0")
    admin = f"admin-{uuid.uuid4().hex[:8]}"
    password = "pw-" + uuid.uuid4().hex
    _manage({**env, "DJANGO_SUPERUSER_PASSWORD": password}, "createsuperuser", "--noinput", "--username", admin,
            "--email", f"{admin}@example.com")
    env.update({
        "WARM_WEB_APP": "guestbook.wsgi:application", "WARM_WEB_APP_KIND": "wsgi", "LAMBDA_TASK_ROOT": APP_DIR,
        "AWS_LAMBDA_FUNCTION_NAME": "django-full",
        # What the CloudFront construct sets: the site's domain first (priming sends it), the function URL's.
        "WARM_WEB_ALLOWED_HOSTS": "guestbook.example.com,.on.aws",
        "WARM_WEB_CSRF_TRUSTED_ORIGINS": SITE,
        "WARM_WEB_PRIME": json.dumps(["/health", "/accounts/login/"]),
    })
    function = Lambda(env, str(tmp_path / "lambda.stderr"))
    try:
        yield function, admin, password
    finally:
        function.close()


def test_priming_with_debug_off_reaches_the_views_on_an_allowed_host(site):
    function, _, _ = site
    assert "primed 2 paths in " in function.stderr()
    assert ": /health 200, /accounts/login/ 200" in function.stderr()


def test_a_browser_session_through_the_shim_with_the_replica_lagging(site, synchronous_commit, replay):
    function, admin, password = site
    browser = Browser(function)
    replay.pause()  # from here on the replica has none of this test's writes

    # Admin login: redirected to the login page, CSRF token from it, session in the database.
    login_page = browser.request("GET", "/admin/")
    assert [r["statusCode"] for r in login_page["history"]] == [302] and login_page["statusCode"] == 200
    assert "csrftoken" in browser.jar
    home = browser.request("POST", "/admin/login/?next=/admin/", form={
        "username": admin, "password": password, "next": "/admin/",
        "csrfmiddlewaretoken": browser.csrf_token(login_page)})
    assert [r["statusCode"] for r in home["history"]] == [302], home["text"][:2000]
    assert {"sessionid", "warm_web_ryw"} <= set(home["history"][0]["set"])
    assert home["statusCode"] == 200 and "Site administration" in home["text"] and admin in home["text"]

    # The guestbook's form: POST, redirect, GET of the new entry (a 404 if that read went to the replica).
    message = f"signed while the replica lags {uuid.uuid4().hex[:8]}"
    index = browser.request("GET", "/")
    signed = browser.request("POST", "/sign/", form={"message": message, "csrfmiddlewaretoken": browser.csrf_token(index)})
    assert [r["statusCode"] for r in signed["history"]] == [302]
    assert re.fullmatch(r"/entries/\d+/", signed["history"][0]["headers"]["location"])
    assert signed["statusCode"] == 200 and message in signed["text"] and admin in signed["text"]
    entry_path = signed["history"][0]["headers"]["location"]

    # The same through the admin: add, then the change list (read through the router) lists it.
    add_page = browser.request("GET", "/admin/guestbook/entry/add/")
    admin_message = f"added in the admin {uuid.uuid4().hex[:8]}"
    listed = browser.request("POST", "/admin/guestbook/entry/add/", form={
        "name": "admin-desk", "message": admin_message, "csrfmiddlewaretoken": browser.csrf_token(add_page)})
    assert [r["statusCode"] for r in listed["history"]] == [302]
    assert listed["statusCode"] == 200 and admin_message in listed["text"]

    # CSRF is on: another origin, or no token, is refused.
    token = browser.csrf_token(browser.request("GET", "/"))
    forged = browser.request("POST", "/sign/", form={"message": "x", "csrfmiddlewaretoken": token},
                             origin="https://evil.example")
    assert forged["statusCode"] == 403
    assert browser.request("POST", "/sign/", form={"message": "x"})["statusCode"] == 403

    # Static files from STATIC_ROOT through WhiteNoise: hashed name, cached for good.
    stylesheet = re.search(r'href="(/static/guestbook/site\.[0-9a-f]{12}\.css)"', signed["text"])
    assert stylesheet, signed["text"][:2000]
    css = browser.request("GET", stylesheet.group(1))
    assert css["statusCode"] == 200 and "font-family" in css["text"]
    assert css["headers"]["cache-control"] == "max-age=315360000, public, immutable"
    assert css["headers"]["content-type"].startswith("text/css")

    # Log out: the session row is deleted on the writer, and a lagging replica cannot bring it back.
    out = browser.request("POST", "/accounts/logout/", form={"csrfmiddlewaretoken": browser.csrf_token(signed)})
    assert [r["statusCode"] for r in out["history"]] == [302] and "sessionid" in out["history"][0]["deleted"]
    again = browser.request("GET", "/admin/", follow=False)
    assert again["statusCode"] == 302 and "/admin/login/" in again["headers"]["location"]

    # Caught up: the next read goes to the replica, which has the entry, and the cookie is dropped.
    replay.resume()
    shown = browser.request("GET", entry_path)
    assert shown["statusCode"] == 200 and message in shown["text"]
    assert shown["deleted"] == ["warm_web_ryw"] and "warm_web_ryw" not in browser.jar
