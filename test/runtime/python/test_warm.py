"""Warm pings: the barrier, the answer, the caps, malformed pings; the app never sees them."""
import threading
import time

import pytest

from lambdatest import FakeContext
from frameworks import FRAMEWORKS, requests_seen
from test_warm_vectors import Clock
from warm_web import warm
from warm_web.loader import load


def ping(hold_until_ms, round_id="r-1", expected=20):
    return {"warmWeb": {"v": 1, "round": round_id, "expected": expected,
                        "holdUntilMs": hold_until_ms}}


def now_ms():
    return time.time() * 1000


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_concurrent_pings_hold_until_the_barrier(framework):
    spec, kind, _, _ = FRAMEWORKS[framework]
    shim = load(spec, kind)
    before = requests_seen(framework)
    deadline = now_ms() + 300
    answers, finished = [None] * 20, [None] * 20

    def send(i):
        answers[i] = shim.handle(ping(deadline, expected=20), FakeContext())
        finished[i] = now_ms()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(done >= deadline - 1 for done in finished), min(finished) - deadline
    # Held to the barrier, not to the cap (MAX_HOLD_MS, 60 s): a bound no load on the machine reaches.
    assert max(finished) < deadline + warm.MAX_HOLD_MS / 2
    bodies = [a["warmWeb"] for a in answers]
    assert {b["environmentId"] for b in bodies} == {shim.environment_id}
    assert len(shim.environment_id) == 16 and int(shim.environment_id, 16) >= 0
    assert sorted(b["coldStart"] for b in bodies) == [False] * 19 + [True]
    assert all(b["initDurationMs"] == shim.init_ms > 0 for b in bodies)
    assert all(b["round"] == "r-1" and b["v"] == 1 and b["runtime"] == "python" for b in bodies)
    assert all(0 < b["heldMs"] < warm.MAX_HOLD_MS / 2 for b in bodies)
    # Each held until the barrier from its own arrival (to the answers' resolution).
    assert all(b["heldMs"] >= deadline - b["receivedAtMs"] - 1 for b in bodies)
    assert requests_seen(framework) == before

    later = shim.handle(ping(now_ms()), FakeContext())["warmWeb"]
    assert later["coldStart"] is False
    assert later["initDurationMs"] == shim.init_ms
    assert requests_seen(framework) == before


def test_environments_differ():
    a, b = load("plainhandler.handler", "handler"), load("plainhandler.handler", "handler")
    assert a.environment_id != b.environment_id


# The holds below run on a fake clock (test_warm_vectors.Clock): what they end at is asserted exactly,
# against the times and remaining time the shim was given, not against the machine's wall clock.
T = 1_732_400_000_000


def test_hold_is_capped_by_remaining_time(monkeypatch):
    shim = load("plainhandler.handler", "handler")
    clock = Clock(T)
    monkeypatch.setattr(warm, "time", clock)
    answer = shim.handle(ping(T + 5_000), FakeContext(remaining_ms=800))["warmWeb"]
    # 800 ms left less 500 ms of margin: 300 ms, far below the 5 s asked for.
    assert answer["heldMs"] == 300
    assert clock.now_ms == T + 300


def test_hold_is_capped_without_a_context(monkeypatch):
    monkeypatch.setattr(warm, "MAX_HOLD_MS", 200)
    shim = load("plainhandler.handler", "handler")
    clock = Clock(T)
    monkeypatch.setattr(warm, "time", clock)
    answer = shim.handle(ping(T + 5_000), None)["warmWeb"]
    assert answer["heldMs"] == 200
    assert clock.now_ms == T + 200


def test_hold_for_counts_from_arrival_and_never_passes_hold_until(monkeypatch):
    shim = load("plainhandler.handler", "handler")
    clock = Clock(T)
    monkeypatch.setattr(warm, "time", clock)
    answer = shim.handle({"warmWeb": {**ping(T + 5_000)["warmWeb"], "holdForMs": 120}}, FakeContext())["warmWeb"]
    assert answer["receivedAtMs"] == T
    assert answer["heldMs"] == 120  # not the 5 s of holdUntilMs
    capped = shim.handle({"warmWeb": {**ping(T + 120 + 50)["warmWeb"], "holdForMs": 5_000}}, FakeContext())["warmWeb"]
    assert capped == {**capped, "receivedAtMs": T + 120, "heldMs": 50}


def test_answer_says_when_the_ping_arrived():
    shim = load("plainhandler.handler", "handler")
    before = now_ms()
    answer = shim.handle(ping(before), FakeContext())["warmWeb"]
    # To the answers' resolution, rounded to the nearest step.
    assert before - warm.RESOLUTION_MS / 2 <= answer["receivedAtMs"] <= now_ms() + warm.RESOLUTION_MS / 2


def test_past_deadline_answers_at_once(monkeypatch):
    shim = load("plainhandler.handler", "handler")
    clock = Clock(T)
    monkeypatch.setattr(warm, "time", clock)
    answer = shim.handle(ping(T - 1_000), FakeContext())["warmWeb"]
    assert answer["heldMs"] == 0
    assert clock.sleeps == 0


@pytest.mark.parametrize("until, now, remaining, want", [
    (1_000_300, 1_000_000, 30_000, 300),
    (1_000_300, 1_000_000, None, 300),
    (1_000_000 + 120_000, 1_000_000, None, 60_000),
    (1_000_000 + 120_000, 1_000_000, 900_000, 60_000),
    (1_000_000 + 5_000, 1_000_000, 2_000, 1_500),
    (1_000_000 + 5_000, 1_000_000, 300, 0),
    (999_000, 1_000_000, 30_000, 0),
])
def test_hold_duration(until, now, remaining, want):
    assert warm.hold_ms(until, now, remaining) == want


GOOD = {"v": 1, "round": "r-9", "expected": 3, "holdUntilMs": 0}
NUMBER = "holdUntilMs must be an epoch time in milliseconds, got"
HOLD_FOR = "holdForMs must be a number of milliseconds >= 0, got"


@pytest.mark.parametrize("body, message", [
    ([], "warmWeb must be an object, got []"),
    ("soon", 'warmWeb must be an object, got "soon"'),
    (None, "warmWeb must be an object, got null"),
    ({**GOOD, "v": 2}, "v must be 1, got 2"),
    ({**GOOD, "v": "1"}, 'v must be 1, got "1"'),
    ({**GOOD, "v": True}, "v must be 1, got true"),
    ({k: v for k, v in GOOD.items() if k != "v"}, "v must be 1, got nothing"),
    ({**GOOD, "round": ""}, 'round must be a non-empty string, got ""'),
    ({**GOOD, "round": 7}, "round must be a non-empty string, got 7"),
    ({k: v for k, v in GOOD.items() if k != "round"}, "round must be a non-empty string, got nothing"),
    ({**GOOD, "expected": -1}, "expected must be an integer >= 1, got -1"),
    ({**GOOD, "expected": 0}, "expected must be an integer >= 1, got 0"),
    ({**GOOD, "expected": 2.5}, "expected must be an integer >= 1, got 2.5"),
    ({**GOOD, "expected": "3"}, 'expected must be an integer >= 1, got "3"'),
    ({**GOOD, "expected": True}, "expected must be an integer >= 1, got true"),
    ({k: v for k, v in GOOD.items() if k != "expected"}, "expected must be an integer >= 1, got nothing"),
    ({**GOOD, "holdUntilMs": "later"}, f'{NUMBER} "later"'),
    ({**GOOD, "holdUntilMs": None}, f"{NUMBER} null"),
    ({**GOOD, "holdUntilMs": False}, f"{NUMBER} false"),
    ({**GOOD, "holdUntilMs": float("nan")}, f"{NUMBER} NaN"),
    ({k: v for k, v in GOOD.items() if k != "holdUntilMs"}, f"{NUMBER} nothing"),
    ({**GOOD, "holdForMs": -1}, f"{HOLD_FOR} -1"),
    ({**GOOD, "holdForMs": "5"}, f'{HOLD_FOR} "5"'),
    ({**GOOD, "holdForMs": None}, f"{HOLD_FOR} null"),
    ({**GOOD, "holdForMs": True}, f"{HOLD_FOR} true"),
    ({**GOOD, "holdForMs": float("inf")}, f"{HOLD_FOR} Infinity"),
])
@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_malformed_ping_is_answered(shims, framework, body, message):
    before = requests_seen(framework)
    answer = shims[framework].handle({"warmWeb": body}, FakeContext())
    assert answer == {"warmWeb": {"v": 1, "error": f"malformed warm ping: {message}"}}
    assert requests_seen(framework) == before


def test_well_formed_ping_is_not_an_error(shims):
    answer = shims["flask"].handle({"warmWeb": dict(GOOD)}, FakeContext())["warmWeb"]
    assert "error" not in answer and answer["round"] == "r-9"
