"""SnapStart hooks: registered with Lambda's snapshot_restore_py, and what they do when called."""
import json
import random
import sys
import textwrap
import types

import pytest

from lambdatest import FakeContext
from djangoproject import write_project
from eventshapes import Spec, http_v2
from shimprocess import run
from warm_web import snapstart
from warm_web.loader import load

PING = {"warmWeb": {"v": 1, "round": "r", "expected": 1, "holdUntilMs": 0}}


@pytest.fixture(autouse=True)
def clean_hooks(monkeypatch):
    monkeypatch.setitem(snapstart._state, "shim", None)
    monkeypatch.setattr(snapstart, "_before", [])
    monkeypatch.setattr(snapstart, "_after", [])


@pytest.fixture
def fake_runtime(monkeypatch):
    """A stand-in for Lambda's snapshot_restore_py, recording what is registered."""
    module = types.ModuleType("snapshot_restore_py")
    module.before, module.after = [], []

    def register_before_snapshot(func, *args, **kwargs):
        module.before.append(func)
        return func

    def register_after_restore(func, *args, **kwargs):
        module.after.append(func)
        return func

    module.register_before_snapshot = register_before_snapshot
    module.register_after_restore = register_after_restore
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", module)
    return module


def _lines(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_hooks_are_registered_with_the_runtime_module(fake_runtime):
    shim = load("flaskapp:app", "wsgi")
    assert snapstart.register(shim) is True
    assert fake_runtime.before == [snapstart.before_snapshot]
    assert fake_runtime.after == [snapstart.after_restore]
    assert snapstart._state["shim"] is shim


def test_no_runtime_module_no_hooks(monkeypatch):
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import raises ImportError
    assert snapstart.runtime_module() is None
    assert snapstart.register(object()) is False


def test_a_module_without_the_hook_functions_is_not_used(monkeypatch):
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", types.ModuleType("snapshot_restore_py"))
    assert snapstart.register() is False


def test_after_restore_makes_the_next_invoke_a_restore_cold_start(capsys, monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "snap-fn")
    shim = load("flaskapp:app", "wsgi")
    snapstart.attach(shim)
    snapshot_id = shim.environment_id
    capsys.readouterr()

    snapstart.before_snapshot()
    snapstart.after_restore()

    assert shim.environment_id != snapshot_id
    assert len(shim.environment_id) == 16 and int(shim.environment_id, 16) >= 0
    answer = shim.handle(PING, FakeContext())["warmWeb"]
    assert answer["coldStart"] is True
    assert answer["environmentId"] == shim.environment_id
    [line] = _lines(capsys)
    line["_aws"].pop("Timestamp")
    # The restore time cannot be measured from inside: no InitDurationMs, Restore: 1.
    assert line == {
        "_aws": {"CloudWatchMetrics": [{"Namespace": "WarmWeb", "Dimensions": [["FunctionName"]],
                                        "Metrics": [{"Name": "ColdStart", "Unit": "Count"}]}]},
        "FunctionName": "snap-fn",
        "ColdStart": 1,
        "Restore": 1,
        "EnvironmentId": shim.environment_id,
        "Runtime": "python",
    }
    assert shim.handle(http_v2(Spec(path="/text")), FakeContext())["statusCode"] == 200
    assert shim.handle(PING, FakeContext())["warmWeb"]["coldStart"] is False
    assert _lines(capsys) == []


def test_an_environment_that_already_served_is_cold_again_after_a_restore(capsys):
    shim = load("flaskapp:app", "wsgi")
    snapstart.attach(shim)
    shim.handle(PING, FakeContext())
    assert "Restore" not in _lines(capsys)[0]
    snapstart.after_restore()
    assert shim.handle(PING, FakeContext())["warmWeb"]["coldStart"] is True
    assert _lines(capsys)[0]["Restore"] == 1


def test_each_restore_gets_its_own_environment_id():
    shim = load("flaskapp:app", "wsgi")
    snapstart.attach(shim)
    ids = set()
    for _ in range(5):
        snapstart.after_restore()
        ids.add(shim.environment_id)
    assert len(ids) == 5


def test_after_restore_reseeds_random():
    random.seed(1234)
    snapshotted = [random.random() for _ in range(3)]
    random.seed(1234)  # the state every restored environment would share
    snapstart.after_restore()
    assert [random.random() for _ in range(3)] != snapshotted


def test_user_hooks_run_inside_the_shim_hooks(capsys):
    shim = load("flaskapp:app", "wsgi")
    snapstart.attach(shim)
    calls = []

    @snapstart.on_before_snapshot
    def flush():
        calls.append(("before", shim.environment_id))

    @snapstart.on_after_restore
    def reconnect():
        calls.append(("after", shim.environment_id))

    snapshot_id = shim.environment_id
    snapstart.before_snapshot()
    snapstart.after_restore()
    # After-restore hooks see the renewed environment.
    assert calls == [("before", snapshot_id), ("after", shim.environment_id)]
    assert shim.environment_id != snapshot_id


def test_a_failing_user_hook_still_closes_connections(monkeypatch):
    closed = []
    monkeypatch.setattr(snapstart, "close_django_connections", lambda: closed.append(True))

    @snapstart.on_before_snapshot
    def broken():
        raise RuntimeError("flush failed")

    with pytest.raises(RuntimeError, match="flush failed"):
        snapstart.before_snapshot()
    assert closed == [True]


def test_before_snapshot_waits_for_an_async_boot():
    waited = []

    class Booting:
        def wait(self):
            waited.append(True)

    snapstart.attach(Booting())
    snapstart.before_snapshot()
    assert waited == [True]


FAKE_RUNTIME = textwrap.dedent("""
    # Stands in for Lambda's snapshot_restore_py: records registrations in order.
    BEFORE, AFTER = [], []

    def register_before_snapshot(func, *args, **kwargs):
        BEFORE.append(func)
        return func

    def register_after_restore(func, *args, **kwargs):
        AFTER.append(func)
        return func
""")

# After INIT: what was registered, and whether priming left a database connection open.
BEFORE = """
import snapshot_restore_py as srp
from django.db import connection
print("STATE " + json.dumps({
    "before": [f.__module__ + "." + f.__name__ for f in srp.BEFORE],
    "after": [f.__module__ + "." + f.__name__ for f in srp.AFTER],
    "open": connection.connection is not None,
    "id": entry._shim.environment_id,
}), flush=True)
"""

# What Lambda does around the snapshot: before hooks in reverse registration order, after hooks in
# registration order.
CALL = """
for hook in reversed(srp.BEFORE):
    hook()
closed = connection.connection is None
for hook in srp.AFTER:
    hook()
print("STATE " + json.dumps({"closed": closed, "open": connection.connection is not None,
                             "id": entry._shim.environment_id}), flush=True)
"""


def _states(result):
    return [json.loads(line[len("STATE "):]) for line in result.other if line.startswith("STATE ")]


def test_django_snapshot_closes_the_connection_and_restore_reconnects(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "snapshot_restore_py.py").write_text(FAKE_RUNTIME)
    app = write_project(tmp_path)
    result = run(app, "wsgi", ["CALL", http_v2(Spec(path="/db")), PING],
                 task_root=tmp_path, pythonpath=[runtime], before=BEFORE, call=CALL,
                 env={"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
                      "WARM_WEB_PRIME": '["/db"]'})
    assert result.returncode == 0, result.stderr
    assert "warm_web.snapstart" in result.imported["modules"]
    registered, restored = _states(result)
    assert registered["before"] == ["warm_web.snapstart.before_snapshot"]
    assert registered["after"] == ["warm_web.snapstart.after_restore"]
    # Priming ran the /db view at INIT: a real SQLite connection was open at snapshot time...
    assert registered["open"] is True
    assert "/db 200" in result.stderr
    # ...closed by the before-snapshot hook, and not reopened by the restore.
    assert restored["closed"] is True and restored["open"] is False
    assert restored["id"] != registered["id"]

    (_, request), (_, ping) = result.results
    assert json.loads(request["result"]["body"]) == {"value": 42}  # reconnected lazily
    assert ping["result"]["warmWeb"]["environmentId"] == restored["id"]
    assert ping["result"]["warmWeb"]["coldStart"] is False
    [emf] = result.emf
    assert emf["Restore"] == 1 and emf["EnvironmentId"] == restored["id"]
    assert "InitDurationMs" not in emf


def test_hooks_registered_when_the_runtime_preloaded_the_module(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "snapshot_restore_py.py").write_text(FAKE_RUNTIME)
    result = run("flaskapp:app", "wsgi", [PING], pythonpath=[runtime],
                 preamble="import snapshot_restore_py",
                 before='print("STATE " + json.dumps(len(sys.modules["snapshot_restore_py"]'
                        '.BEFORE)), flush=True)')
    assert result.returncode == 0, result.stderr
    assert _states(result) == [1]


def test_an_on_demand_init_does_not_look_for_the_runtime_module(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "snapshot_restore_py.py").write_text(FAKE_RUNTIME)
    result = run("flaskapp:app", "wsgi", [PING], pythonpath=[runtime],
                 env={"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"},
                 before='print("STATE " + json.dumps("snapshot_restore_py" in sys.modules), '
                        'flush=True)')
    assert result.returncode == 0, result.stderr
    assert _states(result) == [False]
    assert "warm_web.snapstart" not in result.imported["modules"]


def test_snap_start_init_without_the_runtime_module_still_serves(tmp_path):
    result = run("flaskapp:app", "wsgi", [http_v2(Spec(path="/text"))],
                 env={"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"})
    assert result.returncode == 0, result.stderr
    assert result.results[0][1]["result"]["statusCode"] == 200
