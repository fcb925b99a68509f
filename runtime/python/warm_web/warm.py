"""Warm protocol: check a ping, hold it until the round's barrier, answer it."""
import json
import math
import os
import time

# The protocol's numbers, shared with the Node shim and the warmer (one file, in this package).
with open(os.path.join(os.path.dirname(__file__), "warm_contract.json"), encoding="utf-8") as _file:
    _CONTRACT = json.load(_file)
PROTOCOL_VERSION = _CONTRACT["protocolVersion"]
MAX_HOLD_MS = _CONTRACT["maxHoldMs"]
# Left of the invoke's time so the answer still gets out before Lambda's timeout.
HOLD_MARGIN_MS = _CONTRACT["holdMarginMs"]
RESOLUTION_MS = _CONTRACT["resolutionMs"]
ERROR_PREFIX = _CONTRACT["errorPrefix"]
_PER_MS = round(1 / RESOLUTION_MS)
_INF = float("inf")


def _number(x):
    return type(x) in (int, float)


def _integer(x):
    # JSON has one number type: 2.0 is the integer 2, as in JavaScript.
    return _number(x) and -_INF < x < _INF and x == int(x)


# (name, valid, rule); every field but holdForMs is required.
_FIELDS = (
    ("v", lambda x: _integer(x) and x == PROTOCOL_VERSION, f"must be {PROTOCOL_VERSION}"),
    ("round", lambda x: type(x) is str and x != "", "must be a non-empty string"),
    ("expected", lambda x: _integer(x) and x >= 1, "must be an integer >= 1"),
    ("holdUntilMs", lambda x: _number(x) and -_INF < x < _INF, "must be an epoch time in milliseconds"),
    # Hold this long after the ping arrives (never past holdUntilMs).
    ("holdForMs", lambda x: _number(x) and 0 <= x < _INF, "must be a number of milliseconds >= 0"),
)


def _describe(value):
    """A value as the Node shim's JSON.stringify writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def problem(ping):
    """What is wrong with a ping's ``warmWeb`` value, or None when it is well formed."""
    if type(ping) is not dict:
        return f"warmWeb must be an object, got {_describe(ping)}"
    for name, valid, rule in _FIELDS:
        if name not in ping:
            if name != "holdForMs":
                return f"{name} {rule}, got nothing"
        elif not valid(ping[name]):
            return f"{name} {rule}, got {_describe(ping[name])}"
    return None


def to_resolution(ms):
    """Milliseconds as answers carry them (rounded half up, as Math.round does)."""
    return math.floor(ms * _PER_MS + 0.5) / _PER_MS


def hold_ms(until_ms, now_ms, remaining_ms):
    """How long to hold: until ``until_ms``, capped by the invoke's remaining time and MAX_HOLD_MS."""
    cap = MAX_HOLD_MS if remaining_ms is None else min(MAX_HOLD_MS, remaining_ms - HOLD_MARGIN_MS)
    return max(0.0, min(until_ms - now_ms, cap))


def answer(ping, context, environment_id, cold_start, init_ms):
    """The answer to a ping, given after the hold; malformed pings get an error answer."""
    error = problem(ping)
    if error is not None:
        return {"warmWeb": {"v": PROTOCOL_VERSION, "error": ERROR_PREFIX + error}}
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
        "v": PROTOCOL_VERSION,
        "round": ping["round"],
        "environmentId": environment_id,
        "coldStart": cold_start,
        "initDurationMs": init_ms,
        "receivedAtMs": to_resolution(start),
        "heldMs": to_resolution(time.time() * 1000 - start),
        "runtime": "python",
    }}
