"""Async INIT (WARM_WEB_ASYNC_INIT=1): bounded INIT, the first invoke waits for the boot."""
import json
import sys
import textwrap
import threading
import time

import pytest

from lambdatest import FakeContext
from djangoproject import write_project
from eventshapes import Spec, http_v2
from shimprocess import run
from warm_web.asyncinit import AsyncInitError, AsyncShim, StillBootingError, budget_ms

PING = {"warmWeb": {"v": 1, "round": "r", "expected": 1, "holdUntilMs": 0}}


def _module(tmp_path, name, body):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))


def _async_env(budget_ms, **extra):
    return {"WARM_WEB_ASYNC_INIT": "1", "WARM_WEB_ASYNC_INIT_BUDGET_MS": str(budget_ms), **extra}


def test_import_returns_at_the_budget_and_the_first_invoke_waits(tmp_path):
    _module(tmp_path, "slow_app", """
        import time
        time.sleep(0.6)
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"booted " + environ["PATH_INFO"].encode()]
    """)
    result = run("slow_app:app", "wsgi", [PING, http_v2(Spec(path="/x"))], task_root=tmp_path,
                 env=_async_env(100))
    assert result.returncode == 0, result.stderr
    # INIT ended at the budget, long before the 600 ms import finished.
    assert 90 <= result.imported["ms"] < 450
    assert result.imported["ready"] is False
    assert "slow_app:app is still booting after 100 ms" in result.stderr

    (tag, ping), (tag2, request) = result.results
    assert tag == tag2 == "RESULT"
    answer = ping["result"]["warmWeb"]
    # The ping waited for the boot: the environment is not warm until the app is loaded.
    assert ping["ms"] >= 100
    assert answer["coldStart"] is True
    assert answer["initDurationMs"] >= 600  # the full boot, not the bounded INIT
    assert request["result"]["statusCode"] == 200
    assert request["result"]["body"] == "booted /x"
    [emf] = result.emf
    assert emf["ColdStart"] == 1 and emf["InitDurationMs"] == answer["initDurationMs"]


def test_a_request_as_first_invoke_waits_and_succeeds(tmp_path):
    _module(tmp_path, "slow_app2", """
        import time
        time.sleep(0.4)
        def app(environ, start_response):
            start_response("200 OK", [])
            return [b"ok"]
    """)
    result = run("slow_app2:app", "wsgi", [http_v2(Spec(path="/"))], task_root=tmp_path,
                 env=_async_env(50))
    assert result.returncode == 0, result.stderr
    assert result.imported["ms"] < 300
    [(tag, request)] = result.results
    assert tag == "RESULT" and request["result"]["body"] == "ok"
    assert request["ms"] >= 100
    assert len(result.emf) == 1 and result.emf[0]["InitDurationMs"] >= 400


def test_a_fast_app_is_ready_when_the_import_returns(tmp_path):
    result = run("flaskapp:app", "wsgi", [http_v2(Spec(path="/text"))],
                 env=_async_env(9500, WARM_WEB_PRIME='["/text"]'))
    assert result.returncode == 0, result.stderr
    assert result.imported["ready"] is True
    assert "still booting" not in result.stderr
    assert "primed 1 path in" in result.stderr
    assert result.results[0][1]["result"]["statusCode"] == 200


def test_a_failure_after_the_budget_fails_every_invoke(tmp_path):
    _module(tmp_path, "failing_app", """
        import time
        time.sleep(0.4)
        raise ConnectionError("database unreachable")
    """)
    result = run("failing_app:app", "wsgi", [http_v2(Spec(path="/")), PING], task_root=tmp_path,
                 env=_async_env(50))
    assert result.returncode == 0, result.stderr
    assert result.imported["ms"] < 300
    assert len(result.results) == 2
    for tag, error in result.results:
        assert tag == "ERROR"
        assert error["type"] == "AsyncInitError"
        assert error["message"] == (
            "warm-web: INIT failed (async INIT, WARM_WEB_ASYNC_INIT=1): WARM_WEB_APP="
            "'failing_app:app': cannot import module 'failing_app': database unreachable")
    # The original traceback is in the log once, and no cold start was counted.
    assert result.stderr.count("ConnectionError: database unreachable") >= 1
    assert "every invoke fails with" in result.stderr
    assert result.emf == []


def test_a_failure_inside_the_budget_fails_init_itself(tmp_path):
    _module(tmp_path, "broken_app", """
        raise ImportError("no such dependency")
    """)
    result = run("broken_app:app", "wsgi", [PING], task_root=tmp_path, env=_async_env(5000))
    assert result.returncode != 0
    assert result.imported is None
    assert "WARM_WEB_APP='broken_app:app': cannot import module 'broken_app'" in result.stderr


def test_asgi_app_booted_on_the_thread_is_served_from_the_invoking_thread(tmp_path):
    _module(tmp_path, "slow_fastapi", """
        import time
        time.sleep(0.3)
        from fastapiapp import app, STATS
    """)
    result = run("slow_fastapi:app", "asgi",
                 [http_v2(Spec(path="/lifespan")), http_v2(Spec(path="/echo/a", query="b=1"))],
                 task_root=tmp_path, env=_async_env(50, WARM_WEB_PRIME='["/text"]'))
    assert result.returncode == 0, result.stderr
    assert result.imported["ready"] is False
    (_, lifespan), (_, echo) = result.results
    assert lifespan["result"]["statusCode"] == 200
    # Lifespan ran once, before the primed request (the one request at startup time was none).
    assert json.loads(lifespan["result"]["body"]) == {"startups": 1, "requests_at_startup": 0}
    assert json.loads(echo["result"]["body"])["query"] == [["b", "1"]]
    assert "primed 1 path in" in result.stderr


def test_django_booted_on_the_thread(tmp_path):
    app = write_project(tmp_path)
    result = run(app, "wsgi", [http_v2(Spec(path="/db")), http_v2(Spec(path="/db"))],
                 task_root=tmp_path, env=_async_env(9500, WARM_WEB_PRIME='["/db"]'))
    assert result.returncode == 0, result.stderr
    assert "/db 200" in result.stderr
    for _, response in result.results:
        assert json.loads(response["result"]["body"]) == {"value": 42}


def test_without_the_flag_nothing_async_is_imported():
    result = run("flaskapp:app", "wsgi", [http_v2(Spec(path="/text"))])
    assert result.returncode == 0, result.stderr
    # A plain INIT loads none of the optional modules.
    assert result.imported["modules"] == []


class _GatedImport:
    """A module whose import blocks until ``release()`` (or raises ``error`` then)."""

    def __init__(self, name, error=None):
        self.name = name
        self.error = error
        self.gate = threading.Event()

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        from importlib.machinery import ModuleSpec
        return ModuleSpec(fullname, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        assert self.gate.wait(10)
        if self.error is not None:
            raise self.error

        def app(environ, start_response):
            start_response("200 OK", [])
            return [b"gated"]

        module.app = app

    def release(self):
        self.gate.set()


@pytest.fixture
def gated(monkeypatch):
    made = []

    def make(error=None):
        importer = _GatedImport(f"gated_app_{len(made)}", error)
        made.append(importer)
        monkeypatch.setattr(sys, "meta_path", [importer, *sys.meta_path])
        return importer

    yield make
    for importer in made:
        importer.release()
        sys.modules.pop(importer.name, None)


def test_a_ping_during_the_boot_waits_for_it(gated, capsys):
    importer = gated()
    started = time.perf_counter()
    shim = AsyncShim(f"{importer.name}:app", "wsgi", budget=50)
    assert 0.04 <= time.perf_counter() - started < 1
    assert not shim.ready

    answers = []
    waiter = threading.Thread(target=lambda: answers.append(shim.handle(PING, FakeContext())))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and answers == []  # still waiting for the boot
    importer.release()
    waiter.join(5)
    assert answers[0]["warmWeb"]["coldStart"] is True
    assert answers[0]["warmWeb"]["initDurationMs"] >= 200
    assert shim.handle(http_v2(Spec(path="/")), FakeContext())["body"] == "gated"


def test_an_invoke_that_runs_out_of_time_leaves_the_boot_running(gated, capsys):
    importer = gated()
    shim = AsyncShim(f"{importer.name}:app", "wsgi", budget=10)
    started = time.perf_counter()
    with pytest.raises(StillBootingError, match="is still booting .*the boot continues"):
        shim.handle(http_v2(Spec(path="/")), FakeContext(remaining_ms=650))
    # Waited the invoke's remaining time less 500 ms, no more.
    assert 0.1 <= time.perf_counter() - started < 0.6
    importer.release()
    response = shim.handle(http_v2(Spec(path="/")), FakeContext())
    assert response["statusCode"] == 200
    # That failed invoke did not count as the cold start: this one did.
    assert '"ColdStart":1' in capsys.readouterr().out


def test_a_late_failure_is_raised_by_every_invoke(gated, capsys):
    importer = gated(error=ValueError("bad settings"))
    shim = AsyncShim(f"{importer.name}:app", "wsgi", budget=10)
    importer.release()
    for _ in range(2):
        with pytest.raises(AsyncInitError, match="INIT failed .*bad settings") as info:
            shim.handle(PING, FakeContext())
        assert isinstance(info.value.__cause__, RuntimeError)
        assert isinstance(info.value.__cause__.__cause__, ValueError)


@pytest.mark.parametrize("raw, expected", [(None, 9500), ("", 9500), ("120", 120),
                                           ("x", 9500), ("-1", 9500)])
def test_budget_setting(raw, expected, monkeypatch):
    if raw is None:
        monkeypatch.delenv("WARM_WEB_ASYNC_INIT_BUDGET_MS", raising=False)
    else:
        monkeypatch.setenv("WARM_WEB_ASYNC_INIT_BUDGET_MS", raw)
    assert budget_ms() == expected


def test_the_boot_thread_closes_its_django_connections(monkeypatch):
    """Connections priming opened belong to the boot thread, which ends: they are closed there."""
    import django.db  # noqa: F401 - Django is loaded, as in a Django app

    from warm_web import snapstart

    closed_on = []
    monkeypatch.setattr(snapstart, "close_django_connections",
                        lambda: closed_on.append(threading.current_thread().name))
    AsyncShim("rawapps:wsgi_app", "wsgi", budget=5000).wait()
    assert closed_on == ["warm-web-init"]
