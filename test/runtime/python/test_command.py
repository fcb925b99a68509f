"""The command event: Django, Flask and function commands run in a child process, bounded by the
invoke's deadline; HTTP events never run one."""
import json
import os
import re
from urllib.parse import quote

import pytest

import commandapps
from eventshapes import SHAPES, Spec
from lambdatest import FakeContext
from warm_web import command
from warm_web.loader import load

DJANGO = {"DJANGO_SETTINGS_MODULE": "mysite.settings"}
FLASK = {"WARM_WEB_APP": "commandapps:flask_app", "WARM_WEB_APP_KIND": "wsgi"}


def run(cmd, env=None, remaining_ms=60_000):
    environ = {**os.environ, "AWS_LAMBDA_FUNCTION_NAME": "fn", **(env or {})}
    return command.answer({"v": 1, **cmd}, FakeContext(remaining_ms), environ)["warmWebCommand"]


def alive(pid):
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_django_check_runs_and_answers_its_output():
    answer = run({"kind": "django", "args": ["check"]}, DJANGO)
    assert answer["exitCode"] == 0, answer["output"]
    assert "System check identified no issues" in answer["output"]
    assert answer["truncated"] is False
    assert answer["durationMs"] > 0
    assert set(answer) == {"v", "exitCode", "output", "truncated", "durationMs"}


def test_django_failing_command_gives_its_exit_status_and_message():
    answer = run({"kind": "django", "args": ["check", "--deploy", "--fail-level", "WARNING"]}, DJANGO)
    assert answer["exitCode"] == 1
    assert "SystemCheckError" in answer["output"]
    unknown = run({"kind": "django", "args": ["no_such_command"]}, DJANGO)
    assert unknown["exitCode"] == 1
    assert "Unknown command: 'no_such_command'" in unknown["output"]


def test_flask_cli_command_runs_in_a_child_process():
    load("commandapps:flask_app", "wsgi")
    answer = run({"kind": "flask", "args": ["greet", "world"]}, FLASK)
    assert answer["exitCode"] == 0, answer["output"]
    words = answer["output"].split()
    assert words[:3] == ["hello", "world", "from"]
    assert int(words[3]) != os.getpid()
    failed = run({"kind": "flask", "args": ["fail"]}, FLASK)
    assert failed["exitCode"] == 3
    assert "about to fail" in failed["output"]


def test_function_result_printed_as_json_after_its_output():
    answer = run({"kind": "function", "target": "commandapps:add", "args": ["2", "40"]})
    assert answer["exitCode"] == 0
    # stdout and stderr through one pipe, in the order written.
    assert answer["output"] == "adding ['2', '40']\nto stderr\n{\"sum\": 42}\n"
    assert run({"kind": "function", "target": "commandapps:unprintable"})["output"] == "{1, 2}\n"


def test_function_exception_exits_1_with_the_traceback():
    answer = run({"kind": "function", "target": "commandapps:boom", "args": ["x"]})
    assert answer["exitCode"] == 1
    out = answer["output"]
    assert out.index("before the error") < out.index("Traceback (most recent call last)")
    assert out.rstrip().endswith("ValueError: boom: ['x']")


class ClockedContext(FakeContext):
    """Plenty of time until the command has written ``path``, then 1 s left (the stop point)."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def get_remaining_time_in_millis(self):
        return 1000 if self.path.exists() else 60_000


def test_command_outliving_its_deadline_is_stopped_with_124(tmp_path):
    pids = tmp_path / "pids"
    cmd = {"v": 1, "kind": "function", "target": "commandapps:hang", "args": [str(pids)]}
    answer = command.answer(cmd, ClockedContext(pids), dict(os.environ))["warmWebCommand"]
    assert answer["exitCode"] == 124
    pid, grandchild = pids.read_text().split()
    assert answer["output"].startswith(f"pids {pid} {grandchild}\n")
    assert re.search(r"\nwarm-web: the command did not finish within the function timeout \(stopped "
                     r"after \d+\.\d s, 1 s before the invoke's deadline\)\n$", answer["output"])
    assert not alive(int(pid))
    assert not alive(int(grandchild))


def test_output_over_the_cap_keeps_the_end(monkeypatch):
    monkeypatch.setattr(command, "OUTPUT_CAP", 64 * 1024)
    answer = run({"kind": "function", "target": "commandapps:flood", "args": ["20000"]})
    assert answer["exitCode"] == 0
    assert answer["truncated"] is True
    out = answer["output"]
    assert 63 * 1024 < len(json.dumps(out)) <= 64 * 1024
    assert out.endswith("line 0019999\nthe end\n")
    assert "line 0000000" not in out


def test_real_cap_is_under_one_mebibyte():
    answer = run({"kind": "function", "target": "commandapps:flood", "args": ["200000"]})
    assert answer["truncated"] is True
    assert len(json.dumps({"warmWebCommand": answer})) <= 1024 * 1024
    assert answer["output"].endswith("the end\n")


@pytest.mark.parametrize("cmd, message", [
    ("migrate", "warmWebCommand must be an object"),
    ({"v": 2, "kind": "django", "args": ["check"]}, "v must be 1"),
    ({"v": 1, "kind": "rake", "args": []}, "kind must be django, flask or function"),
    ({"v": 1, "kind": "django", "args": "check"}, "args must be a list of strings"),
    ({"v": 1, "kind": "django", "args": [1]}, "args must be a list of strings"),
    ({"v": 1, "kind": "django", "args": []}, "a django command needs args"),
    ({"v": 1, "kind": "function", "target": "jobs/cleanup.run"}, "target must be module:function"),
    ({"v": 1, "kind": "django", "args": ["check"], "target": "a:b"}, "target is only for function"),
    ({"v": 1, "kind": "django", "args": ["check"]}, "needs DJANGO_SETTINGS_MODULE"),
    ({"v": 1, "kind": "flask", "args": ["routes"]}, "needs a Flask app"),
])
def test_malformed_or_unfit_commands_run_nothing(monkeypatch, cmd, message):
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    environ = {"WARM_WEB_APP": "plainhandler.handler", "WARM_WEB_APP_KIND": "handler"}
    answer = command.answer(cmd, FakeContext(), environ)
    assert list(answer) == ["warmWebCommand"]
    assert answer["warmWebCommand"]["v"] == 1
    assert answer["warmWebCommand"]["error"].startswith("malformed command: ")
    assert message in answer["warmWebCommand"]["error"]


def test_non_zero_exit_emits_the_command_failures_metric(capfd):
    run({"kind": "function", "target": "commandapps:boom"})
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    line = lines[0]
    assert line["_aws"]["CloudWatchMetrics"][0] == {
        "Namespace": "WarmWeb", "Dimensions": [["FunctionName", "CommandKind"]],
        "Metrics": [{"Name": "CommandFailures", "Unit": "Count"}]}
    assert (line["FunctionName"], line["CommandKind"], line["CommandFailures"]) == ("fn", "function", 1)
    assert (line["warmWebCommand"], line["exitCode"]) == ("commandapps:boom", 1)
    run({"kind": "function", "target": "commandapps:add", "args": ["1"]})
    ok = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    assert len(ok) == 1 and "_aws" not in ok[0] and ok[0]["exitCode"] == 0


def _touch_command(marker):
    return {"warmWebCommand": {"v": 1, "kind": "function", "target": "commandapps:touch",
                               "args": [str(marker)]}}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_http_events_carrying_a_command_are_served_by_the_app(tmp_path, shape):
    shim = load("commandapps:flask_app", "wsgi")
    marker = tmp_path / "ran"
    payload = json.dumps(_touch_command(marker))
    specs = [
        Spec(method="POST", path="/run", body=payload.encode(),
             headers={"content-type": "application/json"}),
        Spec(path="/run", query="warmWebCommand=" + quote(payload, safe="")),
        Spec(path="/run", headers={"warmwebcommand": payload}),
    ]
    commandapps.SEEN.clear()
    for spec in specs:
        response = shim.handle(SHAPES[shape](spec), FakeContext())
        assert response["statusCode"] == 200
        assert "warmWebCommand" not in response
    assert [seen[0] for seen in commandapps.SEEN] == ["POST", "GET", "GET"]
    assert commandapps.SEEN[0][2] == payload
    assert not marker.exists()


def test_handler_app_gets_its_events_unchanged_and_commands_run(tmp_path):
    shim = load("commandapps.handler", "handler")
    marker = tmp_path / "ran"
    nested = [{"detail": _touch_command(marker)}, {"body": json.dumps(_touch_command(marker))},
              [_touch_command(marker)], json.dumps(_touch_command(marker))]
    commandapps.SEEN.clear()
    for event in nested:
        assert shim.handle(event, FakeContext()) == {"handled": True}
    assert commandapps.SEEN == nested
    assert not marker.exists()
    answer = shim.handle(_touch_command(marker), FakeContext())
    assert answer["warmWebCommand"]["exitCode"] == 0
    assert marker.read_text() == "ran"
    assert len(commandapps.SEEN) == len(nested)


def test_django_app_dispatches_a_command_event(monkeypatch):
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "mysite.settings")
    shim = load("mysite.wsgi:application", "wsgi")
    answer = shim.handle({"warmWebCommand": {"v": 1, "kind": "django", "args": ["check"]}},
                         FakeContext())
    assert answer["warmWebCommand"]["exitCode"] == 0
    assert "System check identified no issues" in answer["warmWebCommand"]["output"]
