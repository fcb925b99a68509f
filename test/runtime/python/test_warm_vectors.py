"""The shared warm-protocol vectors (test/vectors/warm/), also read by the Node shim's tests: valid pings
held on a fake clock (the hold asserted exactly, not against the wall clock), malformed pings answered
with the exact error text, and the contract's numbers as both runtimes read them."""
import glob
import json
import os

import pytest

from frameworks import requests_seen
from lambdatest import ROOT, FakeContext
from warm_web import warm

VECTORS = sorted(glob.glob(os.path.join(ROOT, "test", "vectors", "warm", "*.json")))
CONTRACT = os.path.join(ROOT, "runtime", "python", "warm_web", "warm_contract.json")


def vectors(kind):
    found = []
    for path in VECTORS:
        with open(path, encoding="utf-8") as f:
            vector = json.load(f)
        if ("error" in vector["expect"]) == (kind == "malformed"):
            found.append(pytest.param(vector, id=vector["name"]))
    return found


class Clock:
    """time.time and time.sleep for warm.py: sleeping moves the clock, nothing waits."""

    def __init__(self, now_ms):
        self.now_ms = now_ms
        self.sleeps = 0

    def time(self):
        return self.now_ms / 1000

    def sleep(self, seconds):
        self.sleeps += 1
        self.now_ms += seconds * 1000


TYPES = {"string": str, "boolean": bool, "number": (int, float)}


def test_the_vectors_are_there():
    assert len(vectors("valid")) >= 8 and len(vectors("malformed")) >= 20


def test_the_shim_reads_the_contract():
    with open(CONTRACT, encoding="utf-8") as f:
        contract = json.load(f)
    assert (warm.PROTOCOL_VERSION, warm.MAX_HOLD_MS, warm.HOLD_MARGIN_MS, warm.RESOLUTION_MS, warm.ERROR_PREFIX) == (
        contract["protocolVersion"], contract["maxHoldMs"], contract["holdMarginMs"], contract["resolutionMs"],
        contract["errorPrefix"])


@pytest.mark.parametrize("vector", vectors("valid"))
def test_valid_ping(monkeypatch, shims, vector):
    clock = Clock(vector["clockMs"])
    monkeypatch.setattr(warm, "time", clock)
    context = FakeContext(vector["remainingMs"]) if "remainingMs" in vector else None
    before = requests_seen("flask")
    answer = shims["flask"].handle(vector["event"], context)["warmWeb"]
    expect = vector["expect"]
    assert sorted(answer) == sorted(expect["fields"])
    assert {k: answer[k] for k in expect["answer"]} == expect["answer"]
    for field, kind in expect["types"].items():
        assert isinstance(answer[field], TYPES[kind]), (field, answer[field])
    assert answer["runtime"] == "python"
    # The hold is the clock's: it ended exactly when the vector says.
    assert clock.now_ms - vector["clockMs"] == pytest.approx(expect["answer"]["heldMs"], abs=1e-6)
    assert requests_seen("flask") == before


@pytest.mark.parametrize("vector", vectors("malformed"))
def test_malformed_ping(shims, vector):
    before = requests_seen("fastapi")
    answer = shims["fastapi"].handle(vector["event"], FakeContext())
    assert answer == {"warmWeb": {"v": 1, "error": vector["expect"]["error"]}}
    assert requests_seen("fastapi") == before


@pytest.mark.parametrize("ms, want", [(1732400000012.34, 1732400000012.3), (0.05, 0.1), (0.25, 0.3), (341.0, 341.0), (2.449, 2.4)])
def test_answers_are_at_the_contract_resolution(ms, want):
    # Half up, as the Node shim's Math.round.
    assert warm.to_resolution(ms) == want


def test_a_real_answer_is_at_the_contract_resolution(shims):
    answer = shims["flask"].handle({"warmWeb": {"v": 1, "round": "r", "expected": 1, "holdUntilMs": 0}}, FakeContext())["warmWeb"]
    for field in ("receivedAtMs", "heldMs"):
        # Already on a step: rounding it again changes nothing (dividing an epoch time by 0.1 would not be exact).
        assert warm.to_resolution(answer[field]) == answer[field], (field, answer[field])
