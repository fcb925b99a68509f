"""Lambda's side of a browser session: imports warm_web.handler as Lambda's INIT does (priming included), then
answers one JSON command a line on stdin, one JSON answer a line on stdout: {"event": ...} invokes the handler
with it, {"exec": code} runs code after INIT (migrations, checks) and answers its ``result`` variable. Unlike
shimprocess.run, the next event can depend on the last answer (cookies, CSRF tokens, redirects)."""
import json
import os
import sys
import traceback

_answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
sys.stdout = sys.stderr  # the app's prints and the shim's EMF lines stay out of the answers

import warm_web.handler as entry  # noqa: E402  (INIT)


class Context:
    function_name = "django-full"
    aws_request_id = "req"

    def get_remaining_time_in_millis(self):
        return 30_000


def main():
    _answers.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if "event" in command:
                result = entry.handler(command["event"], Context())
            else:
                scope = {}
                exec(command["exec"], scope)
                result = scope.get("result")
            answer = {"ok": True, "result": result}
        except BaseException as error:  # noqa: BLE001 - reported to the test
            answer = {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        _answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
