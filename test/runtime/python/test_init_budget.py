"""The INIT budget (WARM_WEB_INIT_WARN_MS): a warning and one SlowInit EMF line, only past it."""
import json
import sys
import time

import pytest

import rawapps
from lambdatest import FakeContext
from eventshapes import Spec, http_v2
from warm_web.loader import DEFAULT_INIT_WARN_MS, init_warn_ms, load


@pytest.fixture
def slow_module(monkeypatch):
    """A WSGI app whose import takes 150 ms (a fresh module each time it is loaded)."""
    name = "slow_import_app"

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    class Finder:
        @staticmethod
        def find_spec(fullname, path=None, target=None):
            if fullname != name:
                return None
            from importlib.machinery import ModuleSpec

            class Loader:
                @staticmethod
                def create_module(spec):
                    return None

                @staticmethod
                def exec_module(module):
                    time.sleep(0.15)
                    module.app = app

            return ModuleSpec(fullname, Loader())

    monkeypatch.setattr(sys, "meta_path", [Finder, *sys.meta_path])
    yield f"{name}:app"
    sys.modules.pop(name, None)


def _lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_slow_init_emits_one_slow_init_line_and_a_warning(slow_module, monkeypatch, capsys):
    monkeypatch.setenv("WARM_WEB_INIT_WARN_MS", "100")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "slow-fn")
    before = int(time.time() * 1000)
    shim = load(slow_module, "wsgi")
    captured = capsys.readouterr()

    assert shim.init_ms >= 150
    assert (f"warm-web: slow INIT: {shim.init_ms} ms (load, lifespan and priming) is over the "
            "WARM_WEB_INIT_WARN_MS threshold of 100 ms") in captured.err
    [line] = _lines(captured.out)
    timestamp = line["_aws"].pop("Timestamp")
    assert before <= timestamp <= time.time() * 1000
    assert line == {
        "_aws": {"CloudWatchMetrics": [{
            "Namespace": "WarmWeb",
            "Dimensions": [["FunctionName"]],
            "Metrics": [{"Name": "SlowInit", "Unit": "Count"}],
        }]},
        "FunctionName": "slow-fn",
        "SlowInit": 1,
        "InitDurationMs": shim.init_ms,
        "InitWarnMs": 100,
        "EnvironmentId": shim.environment_id,
        "Runtime": "python",
    }

    # Once, at INIT: invokes add only the cold-start line, then nothing.
    shim.handle(http_v2(Spec(path="/")), FakeContext())
    shim.handle(http_v2(Spec(path="/")), FakeContext())
    [cold] = _lines(capsys.readouterr().out)
    assert cold["ColdStart"] == 1 and "SlowInit" not in cold


def test_no_slow_init_under_the_threshold(slow_module, monkeypatch, capsys):
    monkeypatch.setenv("WARM_WEB_INIT_WARN_MS", "5000")
    shim = load(slow_module, "wsgi")
    captured = capsys.readouterr()
    assert shim.init_ms >= 150
    assert captured.out == ""
    assert "slow INIT" not in captured.err


def test_priming_counts_towards_the_budget(monkeypatch, capsys):
    def slow(environ, start_response):
        time.sleep(0.08)
        start_response("200 OK", [])
        return []

    monkeypatch.setattr(rawapps, "slow_prime_app", slow, raising=False)
    load("rawapps:slow_prime_app", "wsgi", prime=[], warn_ms=100)
    assert capsys.readouterr().out == ""
    shim = load("rawapps:slow_prime_app", "wsgi", prime=["/a", "/b"], warn_ms=100)
    [line] = _lines(capsys.readouterr().out)
    assert line["SlowInit"] == 1 and line["InitDurationMs"] == shim.init_ms >= 160


def test_default_threshold_is_8_seconds(monkeypatch, capsys):
    monkeypatch.delenv("WARM_WEB_INIT_WARN_MS", raising=False)
    assert init_warn_ms() == DEFAULT_INIT_WARN_MS == 8000
    monkeypatch.setenv("WARM_WEB_INIT_WARN_MS", "250")
    assert init_warn_ms() == 250 and type(init_warn_ms()) is int  # EMF writes 250, as Node does
    monkeypatch.setenv("WARM_WEB_INIT_WARN_MS", "250.5")
    assert init_warn_ms() == 250.5
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("raw", ["soon", "0", "-5", "nan", "inf"])
def test_an_unusable_threshold_falls_back_to_the_default(raw, monkeypatch, capsys):
    monkeypatch.setenv("WARM_WEB_INIT_WARN_MS", raw)
    assert init_warn_ms() == 8000
    assert f"WARM_WEB_INIT_WARN_MS={raw!r} is not a positive number" in capsys.readouterr().err


def test_a_fast_init_with_the_default_threshold_is_quiet(monkeypatch, capsys):
    monkeypatch.delenv("WARM_WEB_INIT_WARN_MS", raising=False)
    load("rawapps:wsgi_app", "wsgi")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
