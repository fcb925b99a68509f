"""EMF: one line on stdout on an environment's first invoke, none after."""
import json
import time

import pytest

from lambdatest import FakeContext
from eventshapes import Spec, http_v2
from warm_web.loader import load


def _lines(capsys):
    return [line for line in capsys.readouterr().out.splitlines() if line.strip()]


@pytest.mark.parametrize("first", ["request", "ping"])
def test_one_emf_line_on_the_first_invoke(capsys, monkeypatch, first):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "my-fn")
    shim = load("flaskapp:app", "wsgi")
    capsys.readouterr()
    request = http_v2(Spec(path="/text"))
    ping = {"warmWeb": {"v": 1, "round": "r", "expected": 1, "holdUntilMs": 0}}
    before = int(time.time() * 1000)

    shim.handle(request if first == "request" else ping, FakeContext())
    lines = _lines(capsys)
    assert len(lines) == 1
    metric = json.loads(lines[0])
    timestamp = metric["_aws"].pop("Timestamp")
    assert before <= timestamp <= time.time() * 1000
    assert metric == {
        "_aws": {"CloudWatchMetrics": [{
            "Namespace": "WarmWeb",
            "Dimensions": [["FunctionName"]],
            "Metrics": [{"Name": "ColdStart", "Unit": "Count"},
                        {"Name": "InitDurationMs", "Unit": "Milliseconds"}],
        }]},
        "FunctionName": "my-fn",
        "ColdStart": 1,
        "InitDurationMs": shim.init_ms,
        "EnvironmentId": shim.environment_id,
        "Runtime": "python",
    }

    shim.handle(request, FakeContext())
    shim.handle(ping, FakeContext())
    assert _lines(capsys) == []


def test_init_duration_covers_the_app_import(monkeypatch):
    """Importing a slow module is part of INIT, so it shows in initDurationMs."""
    import sys
    import types

    slow = types.ModuleType("slow_app_for_init")
    monkeypatch.setitem(sys.modules, "slow_app_for_init", slow)

    def handler(event, context):
        return event

    slow.handler = handler
    original = __import__("importlib").import_module

    def slow_import(name, *args):
        if name == "slow_app_for_init":
            time.sleep(0.05)
        return original(name, *args)

    monkeypatch.setattr("importlib.import_module", slow_import)
    assert load("slow_app_for_init.handler", "handler").init_ms >= 50
