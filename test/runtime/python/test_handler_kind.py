"""The ``handler`` kind: events pass through untouched, pings are still intercepted."""
import pytest

import plainhandler
from lambdatest import FakeContext
from eventshapes import Spec, http_v2
from warm_web.loader import load


def test_event_and_context_pass_through_unchanged():
    shim = load("plainhandler.handler", "handler")
    context = FakeContext()
    for event in (http_v2(Spec(path="/x")), {"Records": [{"eventSource": "aws:sqs"}]}, [1, 2], "s"):
        snapshot = repr(event)
        plainhandler.CALLS.clear()
        assert shim.handle(event, context) == {"handled": True}
        assert len(plainhandler.CALLS) == 1
        assert plainhandler.CALLS[0][0] is event and plainhandler.CALLS[0][1] is context
        assert repr(event) == snapshot


def test_pings_do_not_reach_the_handler():
    shim = load("plainhandler.handler", "handler")
    plainhandler.CALLS.clear()
    answer = shim.handle({"warmWeb": {"v": 1, "round": "r", "expected": 1, "holdUntilMs": 0}},
                         FakeContext())
    assert answer["warmWeb"]["environmentId"] == shim.environment_id
    assert answer["warmWeb"]["coldStart"] is True
    assert plainhandler.CALLS == []


def test_handler_exceptions_propagate():
    """Lambda reports a plain handler's error itself: the shim does not turn it into a 500."""
    shim = load("rawapps.raising_handler", "handler")
    with pytest.raises(ValueError, match="bad input"):
        shim.handle({"x": 1}, FakeContext())
