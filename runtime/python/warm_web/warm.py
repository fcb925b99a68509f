"""Warm protocol: check a ping, hold it until the round's barrier, answer it."""
import json
import time

MAX_HOLD_MS = 60_000
# Left of the invoke's time so the answer still gets out before Lambda's timeout.
SAFETY_MS = 500
_INF = float("inf")

# (name, required, valid, rule)
_FIELDS = (
    ("v", True, lambda x: type(x) is int and x == 1, "must be 1"),
    ("round", True, lambda x: type(x) is str and x != "", "must be a non-empty string"),
    ("expected", True, lambda x: type(x) is int and x >= 1, "must be an integer >= 1"),
    ("holdUntilMs", True, lambda x: type(x) in (int, float) and -_INF < x < _INF,
     "must be a number (epoch milliseconds)"),
    # Hold this long after the ping arrives (never past holdUntilMs).
    ("holdForMs", False, lambda x: type(x) in (int, float) and 0 <= x < _INF,
     "must be a number of milliseconds >= 0"),
)


def problem(ping):
    """What is wrong with a ping's ``warmWeb`` value, or None when it is well formed."""
    if type(ping) is not dict:
        return f"warmWeb must be an object, got {json.dumps(ping)}"
    for name, required, valid, rule in _FIELDS:
        if name not in ping:
            if required:
                return f"{name} is missing"
        elif not valid(ping[name]):
            return f"{name} {rule}, got {json.dumps(ping[name])}"
    return None


def hold_ms(until_ms, now_ms, remaining_ms):
    """How long to hold: until ``until_ms``, capped by the invoke's remaining time and 60 s."""
    cap = MAX_HOLD_MS if remaining_ms is None else min(MAX_HOLD_MS, remaining_ms - SAFETY_MS)
    return max(0.0, min(until_ms - now_ms, cap))


def answer(ping, context, environment_id, cold_start, init_ms):
    """The answer to a ping, given after the hold; malformed pings get an error answer."""
    error = problem(ping)
    if error is not None:
        return {"warmWeb": {"v": 1, "error": "malformed warm ping: " + error}}
    start = time.time() * 1000
    until = ping["holdUntilMs"]
    if "holdForMs" in ping:
        until = min(until, start + ping["holdForMs"])
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    deadline = start + hold_ms(until, start, remaining() if remaining else None)
    # Loop on the wall clock: the barrier is an epoch time, and sleep may end a hair early.
    while (left := deadline - time.time() * 1000) > 0:
        time.sleep(left / 1000)
    return {"warmWeb": {
        "v": 1,
        "round": ping["round"],
        "environmentId": environment_id,
        "coldStart": cold_start,
        "initDurationMs": init_ms,
        "receivedAtMs": round(start, 3),
        "heldMs": round(time.time() * 1000 - start, 3),
        "runtime": "python",
    }}
