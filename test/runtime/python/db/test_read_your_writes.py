"""Read-your-writes across requests (ReadYourWritesMiddleware + ReadReplicaRouter) against a real primary and
streaming replica, with lag injected: replay paused on the replica, so it has none of the test's writes until
resumed. Run with synchronous_commit on and off. Which server served a read is reported by that read
(inet_server_port()); the statements each alias ran are recorded by an execute wrapper in the worker."""
import time
import uuid

import pytest

COOKIE = "warm_web_ryw"


def _name(prefix="item"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _ports(postgres):
    return int(postgres["WW_PG_PRIMARY_PORT"]), int(postgres["WW_PG_REPLICA_PORT"])


def _user(django_worker):
    username, password = _name("user"), "pw-" + uuid.uuid4().hex
    django_worker("create_user", username=username, password=password)  # replicated before the lag starts
    return username, password


def _login_then_next_page(django_worker, username, password, **options):
    return django_worker("browse", steps=[
        {"method": "POST", "path": "/login/", "query": f"username={username}&password={password}"},
        {"method": "GET", "path": "/whoami/"},
    ], **options)["responses"]


def _create_then_redirect(django_worker, name, **options):
    return django_worker("browse", steps=[{"method": "POST", "path": "/items/new/", "query": f"name={name}&value=5"}],
                         **options)


def test_login_then_next_page_is_still_logged_in(django_worker, postgres, synchronous_commit, replay):
    primary, replica = _ports(postgres)
    username, password = _user(django_worker)
    replay.pause()

    login, page = _login_then_next_page(django_worker, username, password)
    assert login["status"] == 200 and login["json"] == {"user": username}
    # The login wrote (the session row, last_login): the response pins the client to the writer.
    assert login["set"][COOKIE] == {"max-age": "30", "httponly": True, "secure": True, "samesite": "Lax", "path": "/"}
    assert page["json"] == {"user": username, "read": {"port": primary, "standby": False}}
    # Sessions are read on the writer whatever the cookie says; the replica was asked once whether it has the write.
    assert page["session_reads"] == {"default": 1, "replica": 0}
    assert page["ryw_checks"] == {"default": 0, "replica": 1}
    assert page["deleted"] == []  # the replica has not replayed the login yet: the cookie stays


def test_the_cookie_alone_keeps_the_login_when_sessions_may_read_the_replica(django_worker, postgres,
                                                                               synchronous_commit, replay):
    primary, _ = _ports(postgres)
    username, password = _user(django_worker)
    replay.pause()
    _, page = _login_then_next_page(django_worker, username, password, writer_apps=[])
    assert page["json"] == {"user": username, "read": {"port": primary, "standby": False}}
    assert page["session_reads"] == {"default": 1, "replica": 0}


def test_without_the_middleware_the_login_is_lost_behind_the_lagging_replica(django_worker, postgres,
                                                                              synchronous_commit, replay):
    """What the issue measured, made deterministic: per-request read-your-writes only, sessions on the replica."""
    _, replica = _ports(postgres)
    username, password = _user(django_worker)
    replay.pause()
    login, page = _login_then_next_page(django_worker, username, password, app="per_request_only", writer_apps=[])
    assert login["json"] == {"user": username} and COOKIE not in login["set"]
    assert page["json"] == {"user": None, "read": {"port": replica, "standby": True}}
    assert page["session_reads"] == {"default": 0, "replica": 1}
    # Sessions on the writer (the default) keep this login even without the middleware...
    _, page = _login_then_next_page(django_worker, username, password, app="per_request_only")
    assert page["json"]["user"] == username and page["json"]["read"]["port"] == replica


def test_create_redirect_read_finds_the_new_object(django_worker, postgres, synchronous_commit, replay):
    replay.pause()
    primary, _ = _ports(postgres)
    name = _name()
    created, shown = _create_then_redirect(django_worker, name)["responses"]
    assert created["status"] == 302 and COOKIE in created["set"]
    assert shown["request"] == "GET /items/" and shown["status"] == 200
    assert shown["json"] == {"read": {"port": primary, "standby": False}, "found": True, "value": 5}
    assert shown["ryw_checks"]["replica"] == 1


def test_without_the_middleware_the_redirect_misses_the_new_object(django_worker, postgres, synchronous_commit,
                                                                    replay):
    replay.pause()
    _, replica = _ports(postgres)
    created, shown = _create_then_redirect(django_worker, _name(), app="per_request_only")["responses"]
    assert created["status"] == 302 and COOKIE not in created["set"]
    assert shown["json"] == {"read": {"port": replica, "standby": True}, "found": False, "value": None}


def test_once_the_replica_caught_up_reads_go_back_to_it_and_the_cookie_is_dropped(
        django_worker, postgres, synchronous_commit, replay):
    replay.pause()
    primary, replica = _ports(postgres)
    name = _name()
    visit = _create_then_redirect(django_worker, name)
    jar = visit["jar"]
    assert COOKIE in jar
    # Still lagging: the next page reads the writer again, and keeps the cookie.
    again = django_worker("browse", steps=[{"method": "GET", "path": "/items/", "query": f"name={name}"}], jar=jar)
    assert again["responses"][0]["json"]["read"]["port"] == primary and again["jar"] == jar

    replay.resume()
    back = django_worker("browse", jar=jar, steps=[
        {"method": "GET", "path": "/items/", "query": f"name={name}"},
        {"method": "GET", "path": "/server/"},
    ])
    caught_up, after = back["responses"]
    assert caught_up["json"] == {"read": {"port": replica, "standby": True}, "found": True, "value": 5}
    assert caught_up["ryw_checks"] == {"default": 0, "replica": 1}
    assert caught_up["statements"]["default"] == 0
    assert caught_up["deleted"] == [COOKIE] and COOKIE not in back["jar"]
    # No cookie, no check: an ordinary read on the replica.
    assert after["json"] == {"port": replica, "standby": True}
    assert after["ryw_checks"] == {"default": 0, "replica": 0} and after["statements"]["default"] == 0


def test_a_request_that_does_not_read_keeps_the_cookie_without_asking(django_worker, replay):
    replay.pause()
    jar = _create_then_redirect(django_worker, _name())["jar"]
    replay.resume()
    # /cache/ reads no model: the replica is not asked, and the cookie stays for the next read.
    answer = django_worker("browse", jar=jar, steps=[{"method": "GET", "path": "/cache/", "query": "key=k"}])
    assert answer["responses"][0]["ryw_checks"] == {"default": 0, "replica": 0}
    assert answer["jar"] == jar


def test_a_forged_cookie_is_ignored_and_dropped(django_worker, postgres, replay):
    replay.pause()
    _, replica = _ports(postgres)
    jar = _create_then_redirect(django_worker, _name())["jar"]
    value = django_worker("cookie_value", raw=jar[COOKIE])
    assert value.startswith("L") and "/" in value  # the writer's WAL position
    forged = {COOKIE: jar[COOKIE][:-3] + "abc"}
    answer = django_worker("browse", jar=forged, steps=[{"method": "GET", "path": "/server/"}])
    response = answer["responses"][0]
    assert response["json"]["port"] == replica and response["ryw_checks"]["replica"] == 0
    assert response["deleted"] == [COOKIE]


def test_where_the_writer_has_no_wal_position_the_cookie_is_a_deadline(django_worker, postgres, replay):
    replay.pause()
    primary, replica = _ports(postgres)
    answer = django_worker("writer_without_wal_position")
    assert answer == {"before": True, "after": False, "mark": "T", "told": ["INFO"]}

    django_worker("set_wal_positions", available=False)
    try:
        name = _name()
        visit = django_worker("browse", steps=[{"method": "POST", "path": "/items/new/", "query": f"name={name}"}])
        shown = visit["responses"][1]
        assert django_worker("cookie_value", raw=visit["jar"][COOKIE]).startswith("T")
        # Before the deadline: the writer, without asking the replica.
        assert shown["json"]["found"] is True and shown["json"]["read"]["port"] == primary
        assert shown["ryw_checks"] == {"default": 0, "replica": 0}
    finally:
        django_worker("set_wal_positions", available=True)


def test_a_replica_without_wal_positions_reads_the_writer_and_turns_cookies_into_deadlines(django_worker):
    assert django_worker("replica_without_wal_position") == {
        "caught_up": False, "wal": False, "told": ["INFO"], "mark": "T"}


@pytest.mark.parametrize("lag_ms, expected", [(None, 30), (500, 2.0), (0, 1.0), (60_000, 30)])
def test_the_deadline_window_follows_the_measured_replica_lag(django_worker, lag_ms, expected):
    """Twice the highest reader lag aurora_replica_status() reports, plus 1 s, capped at Max-Age; the cap
    where there is no such function."""
    assert django_worker("lag_window", lag_ms=lag_ms, cap=30) == expected


def test_without_a_replica_the_middleware_sets_no_cookie(django_worker):
    assert django_worker("middleware_without_replica") == {"cookies": [], "statements": []}


def test_the_middleware_must_come_before_session_middleware(django_worker):
    answer = django_worker("middleware_before_session_is_required")
    assert answer["error"] == "ImproperlyConfigured"
    assert "ReadYourWritesMiddleware must come before django.contrib.sessions.middleware.SessionMiddleware" in answer["message"]


@pytest.mark.parametrize("name, value, message", [
    ("WARM_WEB_RYW_MAX_AGE", 0, "WARM_WEB_RYW_MAX_AGE must be a number of seconds from 1 to 3600, got 0"),
    ("WARM_WEB_RYW_MAX_AGE", "30", "WARM_WEB_RYW_MAX_AGE must be a number of seconds from 1 to 3600, got '30'"),
    ("WARM_WEB_WRITER_APPS", "auth", "WARM_WEB_WRITER_APPS must be a list of app labels, got 'auth'"),
    ("WARM_WEB_RYW_COOKIE", "a b", "WARM_WEB_RYW_COOKIE must be a cookie name, got 'a b'"),
])
def test_bad_settings_fail_at_startup_naming_the_setting(django_worker, name, value, message):
    answer = django_worker("bad_settings", name=name, value=value)
    assert answer == {"error": "ImproperlyConfigured", "message": f"warm_web.django: {message}"}


def test_the_deadline_passes(django_worker, postgres, replay):
    """A deadline cookie stops pinning once it is over (here the 2 s Max-Age, with no lag to measure)."""
    replay.pause()
    primary, replica = _ports(postgres)
    django_worker("set_wal_positions", available=False)
    try:
        name = _name()
        jar = django_worker("browse", steps=[{"method": "POST", "path": "/items/new/", "query": f"name={name}"}],
                            writer_apps=None, follow=False, max_age=2)["jar"]
        time.sleep(2.2)
        answer = django_worker("browse", jar=jar, max_age=2, steps=[{"method": "GET", "path": "/server/"}])
        assert answer["responses"][0]["json"]["port"] == replica
        assert answer["responses"][0]["deleted"] == [COOKIE]
    finally:
        django_worker("set_wal_positions", available=True)
