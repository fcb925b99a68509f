"""The command event (docs/RUNTIME_CONTRACT.md "Command event"): a Django management command, a Flask
CLI command or a function of the app, run in a child process so that it can be stopped at the invoke's
deadline and its exit status is its own."""
import importlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

# The answer's output: at most 1 MiB with the answer's own fields, the end kept.
OUTPUT_CAP = 1024 * 1024 - 1024
# The invoke keeps this long to stop the command and answer.
RESERVE_MS = 1000
# Between SIGTERM and SIGKILL.
GRACE_S = 0.5
POLL_S = 0.2
TIMED_OUT = 124
_TARGET = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class Malformed(Exception):
    pass


def answer(command, context, environ=None):
    """Run ``command`` (the event's ``warmWebCommand`` value); the command answer, never raises."""
    environ = os.environ if environ is None else environ
    try:
        kind, args, target = _parse(command)
        argv = _child_argv(kind, args, target, environ)
    except Malformed as exc:
        return {"warmWebCommand": {"v": 1, "error": f"malformed command: {exc}"}}
    result = run(argv, getattr(context, "get_remaining_time_in_millis", None), _child_env(environ))
    shown = " ".join([target or kind, *args])
    _log(environ, kind, shown, result)
    return {"warmWebCommand": {"v": 1, **result}}


def _parse(command):
    if not isinstance(command, dict):
        raise Malformed(f"warmWebCommand must be an object, got {json.dumps(command)[:200]}")
    if command.get("v") != 1:
        raise Malformed(f"v must be 1, got {json.dumps(command.get('v'))}")
    kind = command.get("kind")
    if kind not in ("django", "flask", "function"):
        raise Malformed(f"kind must be django, flask or function, got {json.dumps(kind)[:200]}")
    args = command.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) and "\0" not in a for a in args):
        raise Malformed(f"args must be a list of strings, got {json.dumps(args)[:200]}")
    target = command.get("target")
    if kind == "function":
        if not isinstance(target, str) or not _TARGET.match(target):
            raise Malformed(f"a function command's target must be module:function, got "
                            f"{json.dumps(target)[:200]}")
    elif target is not None:
        raise Malformed(f"target is only for function commands, got it with kind {kind}")
    if kind in ("django", "flask") and not args:
        raise Malformed(f"a {kind} command needs args (the command to run)")
    return kind, args, target


def _child_argv(kind, args, target, environ):
    if kind == "django":
        if not environ.get("DJANGO_SETTINGS_MODULE"):
            raise Malformed("a django command needs DJANGO_SETTINGS_MODULE in the function's "
                            "environment")
        if importlib.util.find_spec("django") is None:
            raise Malformed("a django command needs Django, and it is not importable here")
    elif kind == "flask":
        target = environ.get("WARM_WEB_APP", "")
        if environ.get("WARM_WEB_APP_KIND") not in ("wsgi", "asgi") or not _is_flask(target):
            raise Malformed(f"a flask command needs a Flask app, and WARM_WEB_APP={target!r} is not "
                            "one")
    return [sys.executable, "-c", "import warm_web.command as c; c._child()",
            json.dumps({"kind": kind, "args": args, "target": target})]


def _is_flask(spec):
    """The app the shim loaded at INIT (already imported: nothing of the app runs here)."""
    if "flask" not in sys.modules:
        return False
    module_name, _, attr = spec.partition(":")
    app = getattr(sys.modules.get(module_name), attr, None) if attr else None
    return isinstance(app, sys.modules["flask"].Flask)


def _child_env(environ):
    # sys.path as INIT built it (LAMBDA_TASK_ROOT, the slim code directory, the layer).
    paths = [p or os.getcwd() for p in sys.path]
    env = dict(environ)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(argv, remaining_ms, env):
    """Run ``argv``, output capped (end kept), stopped when ``remaining_ms()`` (the invoke's time
    left; None: no limit) drops to RESERVE_MS."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=env, start_new_session=True)
    tail = _Tail(OUTPUT_CAP)
    reader = threading.Thread(target=tail.drain, args=(child.stdout,), daemon=True)
    reader.start()
    timed_out = False
    code = None
    while code is None:
        left_s = None if remaining_ms is None else (remaining_ms() - RESERVE_MS) / 1000
        if left_s is not None and left_s <= 0:
            timed_out = True
            _stop(child)
            code = TIMED_OUT
            break
        # The time left is read again each turn: the context, not a copy of it, is the clock.
        try:
            code = child.wait(None if left_s is None else min(left_s, POLL_S))
        except subprocess.TimeoutExpired:
            pass
    # Children of the command that outlive it (and would hold its output open) are stopped with it.
    _signal_group(child.pid, signal.SIGKILL)
    reader.join(GRACE_S)
    ran_s = time.perf_counter() - started
    if code < 0:
        code = 128 - code
    note = None
    if timed_out:
        note = (f"warm-web: the command did not finish within the function timeout (stopped after "
                f"{ran_s:.1f} s, {RESERVE_MS // 1000} s before the invoke's deadline)\n")
    output, truncated = tail.text(note)
    return {"exitCode": code, "output": output, "truncated": truncated,
            "durationMs": round(ran_s * 1000, 1)}


def _stop(child):
    """SIGTERM to the command's process group, SIGKILL to what is left after the grace."""
    _signal_group(child.pid, signal.SIGTERM)
    try:
        child.wait(GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    # The leader may be gone and its own children not: the group is killed either way.
    _signal_group(child.pid, signal.SIGKILL)
    child.wait()


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


class _Tail:
    """The last ``cap`` bytes of a stream, copied to the function's log as they arrive."""

    def __init__(self, cap):
        self.cap = cap
        self.buf = bytearray()
        self.dropped = 0
        self.lock = threading.Lock()

    def drain(self, stream):
        log = getattr(sys.stderr, "buffer", None)
        for chunk in iter(lambda: stream.read1(65536), b""):
            if log is not None:
                log.write(chunk)
                log.flush()
            with self.lock:
                self.buf += chunk
                self._trim(self.cap)
        stream.close()

    def _trim(self, cap):
        over = len(self.buf) - cap
        if over > 0:
            del self.buf[:over]
            self.dropped += over

    def text(self, note):
        """The output with ``note`` at its end, at most ``cap`` characters once JSON-escaped."""
        with self.lock:
            data = bytes(self.buf)
            truncated = self.dropped > 0
        if truncated:
            # A cut in the middle of a UTF-8 character: start at the next whole one.
            while data and 0x80 <= data[0] < 0xC0:
                data = data[1:]
        text = data.decode("utf-8", "replace") + (note or "")
        # Escaping (newlines, quotes, non-ASCII) makes the answer longer than the bytes read.
        while (over := len(json.dumps(text)) - self.cap) > 0:
            text = text[over:]
            truncated = True
        return text, truncated


def _log(environ, kind, shown, result):
    """A structured line per command; a non-zero exit also counts in the CommandFailures metric."""
    function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
    line = {"warmWebCommand": shown, "kind": kind, "exitCode": result["exitCode"],
            "durationMs": result["durationMs"], "truncated": result["truncated"]}
    if result["exitCode"] != 0:
        line = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [{
                    "Namespace": "WarmWeb",
                    "Dimensions": [["FunctionName", "CommandKind"]],
                    "Metrics": [{"Name": "CommandFailures", "Unit": "Count"}],
                }],
            },
            "FunctionName": function_name,
            "CommandKind": kind,
            "CommandFailures": 1,
            **line,
            "Runtime": "python",
        }
    print(json.dumps(line, separators=(",", ":")), flush=True)


def _child():
    """In the child process: run the command named by argv[1]; its exit status is the answer's."""
    spec = json.loads(sys.argv[1])
    kind, args = spec["kind"], spec["args"]
    if kind == "django":
        from django.core.management import execute_from_command_line
        execute_from_command_line(["manage.py", *args])
    elif kind == "flask":
        from flask.cli import main
        sys.argv = ["flask", "--app", spec["target"], *args]
        main()
    else:
        module_name, _, attr = spec["target"].partition(":")
        target = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
        result = target(list(args))
        if result is not None:
            try:
                print(json.dumps(result))
            except (TypeError, ValueError):
                print(result)
