import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path[:0] = [os.path.join(ROOT, "runtime", "python"), os.path.join(HERE, "apps"), HERE]

from lambdatest import FakeContext  # noqa: E402
from warm_web.loader import load  # noqa: E402


def pytest_configure(config):
    # FastAPI's TestClient warns that it wants httpx2; requirements.txt installs httpx on purpose.
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture
def context():
    return FakeContext()


@pytest.fixture(scope="session")
def shims():
    """One loaded shim per framework, shared: loading is INIT, done once per environment."""
    from frameworks import FRAMEWORKS

    return {name: load(spec, kind) for name, (spec, kind, _, _) in FRAMEWORKS.items()}
