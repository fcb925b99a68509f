"""The real module path: Lambda imports warm_web.handler with the environment set."""
import json
import os
import subprocess
import sys

from lambdatest import ROOT, HERE
from eventshapes import Spec, http_v2

SCRIPT = """
import json, sys
event = json.loads(sys.stdin.read())
import warm_web.handler
print("AFTER-INIT", sorted(m for m in ("asyncio", "flask", "django") if m in sys.modules))
print(json.dumps(warm_web.handler.handler(event, None)))
"""


def run(app, kind, event, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARM_WEB", "DJANGO"))}
    env.update({
        "WARM_WEB_APP": app, "WARM_WEB_APP_KIND": kind, "AWS_LAMBDA_FUNCTION_NAME": "e2e-fn",
        "LAMBDA_TASK_ROOT": os.path.join(HERE, "apps"),
        "PYTHONPATH": os.path.join(ROOT, "runtime", "python"),
        **(extra_env or {}),
    })
    return subprocess.run([sys.executable, "-c", SCRIPT], input=json.dumps(event), env=env,
                          capture_output=True, text=True, timeout=60)


def test_import_time_init_serves_flask():
    result = run("flaskapp:app", "wsgi", http_v2(Spec(path="/echo/e2e", query="a=1")))
    assert result.returncode == 0, result.stderr
    after_init, metric, answer = result.stdout.splitlines()
    assert json.loads(metric)["FunctionName"] == "e2e-fn"
    # INIT imported the app eagerly, and kept asyncio out for a WSGI app.
    assert after_init == "AFTER-INIT ['flask']"
    response = json.loads(answer)
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["rest"] == "e2e" and body["query"] == [["a", "1"]]


def test_wsgi_init_stays_off_asyncio():
    result = run("rawapps:wsgi_app", "wsgi", http_v2(Spec(path="/x")))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "AFTER-INIT []"


def test_bad_app_fails_the_import():
    result = run("flaskapp:missing", "wsgi", {})
    assert result.returncode != 0
    assert "WARM_WEB_APP='flaskapp:missing'" in result.stderr
    assert "AFTER-INIT" not in result.stdout


def test_asgi_shutdown_runs_when_the_process_exits(tmp_path):
    (tmp_path / "lifespan_app.py").write_text('''
async def app(scope, receive, send):
    assert scope["type"] == "lifespan"
    assert (await receive())["type"] == "lifespan.startup"
    await send({"type": "lifespan.startup.complete"})
    assert (await receive())["type"] == "lifespan.shutdown"
    print("SHUTDOWN-RAN", flush=True)
    await send({"type": "lifespan.shutdown.complete"})
''')
    result = run("lifespan_app:app", "asgi", {"warmWeb": {"v": 1, "round": "r", "expected": 1,
                                                          "holdUntilMs": 0}},
                 {"LAMBDA_TASK_ROOT": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "SHUTDOWN-RAN"
    assert "Task was destroyed" not in result.stderr
