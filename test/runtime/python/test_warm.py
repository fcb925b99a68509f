"""Warm pings: the barrier, the answer, the caps, malformed pings; the app never sees them."""
import threading
import time

import pytest

from lambdatest import FakeContext
from frameworks import FRAMEWORKS, requests_seen
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
    assert max(finished) < deadline + 1_000  # held to the barrier, not much beyond
    bodies = [a["warmWeb"] for a in answers]
    assert {b["environmentId"] for b in bodies} == {shim.environment_id}
    assert len(shim.environment_id) == 16 and int(shim.environment_id, 16) >= 0
    assert sorted(b["coldStart"] for b in bodies) == [False] * 19 + [True]
    assert all(b["initDurationMs"] == shim.init_ms > 0 for b in bodies)
    assert all(b["round"] == "r-1" and b["v"] == 1 and b["runtime"] == "python" for b in bodies)
    assert all(0 < b["heldMs"] <= 300 + 1_000 for b in bodies)
    assert requests_seen(framework) == before

    later = shim.handle(ping(now_ms()), FakeContext())["warmWeb"]
    assert later["coldStart"] is False
    assert later["initDurationMs"] == shim.init_ms
    assert requests_seen(framework) == before


def test_environments_differ():
    a, b = load("plainhandler.handler", "handler"), load("plainhandler.handler", "handler")
    assert a.environment_id != b.environment_id


def test_hold_is_capped_by_remaining_time():
    shim = load("plainhandler.handler", "handler")
    started = now_ms()
    answer = shim.handle(ping(started + 5_000), FakeContext(remaining_ms=800))["warmWeb"]
    elapsed = now_ms() - started
    # 800 ms left less 500 ms of margin: 300 ms, far below the 5 s asked for.
    assert 300 - 5 <= answer["heldMs"] <= 300 + 500
    assert 300 - 5 <= elapsed <= 300 + 700


def test_hold_is_capped_without_a_context(monkeypatch):
    monkeypatch.setattr(warm, "MAX_HOLD_MS", 200)
    shim = load("plainhandler.handler", "handler")
    started = now_ms()
    answer = shim.handle(ping(started + 5_000), None)["warmWeb"]
    assert 200 - 5 <= answer["heldMs"] <= 200 + 500
    assert now_ms() - started < 900


def test_hold_for_counts_from_arrival_and_never_passes_hold_until():
    shim = load("plainhandler.handler", "handler")
    before = now_ms()
    answer = shim.handle({"warmWeb": {**ping(before + 5_000)["warmWeb"], "holdForMs": 120}}, FakeContext())["warmWeb"]
    after = now_ms()
    assert before <= answer["receivedAtMs"] <= after - 120
    assert 120 - 1 <= answer["heldMs"] < 1_000  # not the 5 s of holdUntilMs
    capped = shim.handle({"warmWeb": {**ping(now_ms() + 50)["warmWeb"], "holdForMs": 5_000}}, FakeContext())["warmWeb"]
    assert capped["heldMs"] < 1_000


def test_answer_says_when_the_ping_arrived():
    shim = load("plainhandler.handler", "handler")
    before = now_ms()
    answer = shim.handle(ping(before), FakeContext())["warmWeb"]
    assert before <= answer["receivedAtMs"] <= now_ms()


def test_past_deadline_answers_at_once():
    shim = load("plainhandler.handler", "handler")
    answer = shim.handle(ping(now_ms() - 1_000), FakeContext())["warmWeb"]
    assert answer["heldMs"] < 20


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
NUMBER = "holdUntilMs must be a number (epoch milliseconds), got"
HOLD_FOR = "holdForMs must be a number of milliseconds >= 0, got"


@pytest.mark.parametrize("body, message", [
    ([], "warmWeb must be an object, got []"),
    ("soon", 'warmWeb must be an object, got "soon"'),
    (None, "warmWeb must be an object, got null"),
    ({**GOOD, "v": 2}, "v must be 1, got 2"),
    ({**GOOD, "v": "1"}, 'v must be 1, got "1"'),
    ({**GOOD, "v": True}, "v must be 1, got true"),
    ({k: v for k, v in GOOD.items() if k != "v"}, "v is missing"),
    ({**GOOD, "round": ""}, 'round must be a non-empty string, got ""'),
    ({**GOOD, "round": 7}, "round must be a non-empty string, got 7"),
    ({k: v for k, v in GOOD.items() if k != "round"}, "round is missing"),
    ({**GOOD, "expected": -1}, "expected must be an integer >= 1, got -1"),
    ({**GOOD, "expected": 0}, "expected must be an integer >= 1, got 0"),
    ({**GOOD, "expected": 2.5}, "expected must be an integer >= 1, got 2.5"),
    ({**GOOD, "expected": "3"}, 'expected must be an integer >= 1, got "3"'),
    ({**GOOD, "expected": True}, "expected must be an integer >= 1, got true"),
    ({k: v for k, v in GOOD.items() if k != "expected"}, "expected is missing"),
    ({**GOOD, "holdUntilMs": "later"}, f'{NUMBER} "later"'),
    ({**GOOD, "holdUntilMs": None}, f"{NUMBER} null"),
    ({**GOOD, "holdUntilMs": False}, f"{NUMBER} false"),
    ({**GOOD, "holdUntilMs": float("nan")}, f"{NUMBER} NaN"),
    ({k: v for k, v in GOOD.items() if k != "holdUntilMs"}, "holdUntilMs is missing"),
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
