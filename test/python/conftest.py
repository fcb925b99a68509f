import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(ROOT, "lib", "runtime", "python"), os.path.join(HERE, "apps"), HERE]

from warm_web.loader import load  # noqa: E402


def pytest_configure(config):
    # FastAPI's TestClient warns that it wants httpx2; requirements.txt installs httpx on purpose.
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")


class FakeContext:
    """Enough of Lambda's context object for the shim and the apps."""

    function_name = "warm-web-tests"
    aws_request_id = "ctx-req-1"

    def __init__(self, remaining_ms=30_000):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self):
        return self.remaining_ms


@pytest.fixture
def context():
    return FakeContext()


@pytest.fixture(scope="session")
def shims():
    """One loaded shim per framework, shared: loading is INIT, done once per environment."""
    from frameworks import FRAMEWORKS

    return {name: load(spec, kind) for name, (spec, kind, _, _) in FRAMEWORKS.items()}
