"""The same request through the shim (every event shape) and the framework's own test client."""
import json
import random

import pytest

from lambdatest import FakeContext
from eventshapes import API_HOST, SHAPES, HOSTS, Spec, alb_single_view, read
from frameworks import FRAMEWORKS

BIG = random.Random(7).randbytes(1_300_000)

CASES = {
    "get-query-path": Spec(
        path="/echo/caf%C3%A9/x%20y/%E6%97%A5",
        query="a=1&a=2&q=%E6%97%A5%E6%9C%AC&sp=a%20b&amp=x%26y&empty=",
        headers={"x-test": "hello"}),
    "post-json": Spec(
        method="POST", path="/echo/json", headers={"content-type": "application/json"},
        body=json.dumps({"name": "Zoë", "n": [1, 2, 3], "ok": True}).encode()),
    "post-form": Spec(
        method="POST", path="/echo/form",
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=b"a=1&a=2&b=h%C3%A9llo+w%C3%B6rld&c="),
    "binary-body": Spec(
        method="POST", path="/bytes", headers={"content-type": "application/octet-stream"},
        body=bytes(range(256)) * 3, binary=True),
    "binary-response": Spec(path="/png"),
    "utf8-text": Spec(path="/text"),
    "head": Spec(method="HEAD", path="/text"),
    "redirect": Spec(path="/redirect"),
    "not-found": Spec(path="/no/such/page"),
    "set-cookies": Spec(path="/cookies"),
    "request-cookies": Spec(path="/echo/cookies", cookies=["a=1", "b=two", "c=%C3%A9"]),
    "large-body": Spec(
        method="POST", path="/bytes", headers={"content-type": "application/octet-stream"},
        body=BIG, binary=True),
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_shim_matches_framework_client(shims, framework, case, shape):
    spec = CASES[case]
    got = read(shape, shims[framework].handle(SHAPES[shape](spec), FakeContext()))
    # An ALB without multi-value headers keeps only the last value of a repeated query key.
    reference_spec = alb_single_view(spec) if shape == "alb-single" else spec
    want = FRAMEWORKS[framework][3](reference_spec, HOSTS[shape])

    assert got.status == want.status
    assert got.headers == want.headers
    # A single-value ALB answer holds one value per name: the last Set-Cookie, as ALB keeps it.
    assert got.cookies == (want.cookies[-1:] if shape == "alb-single" else want.cookies)
    if spec.method == "HEAD":
        assert got.body == b""
        assert int(got.headers["content-length"]) > 0
    else:
        assert got.body == want.body


def test_cases_really_cover_what_they_claim(shims):
    """Guard the differential test against comparing two empty answers."""
    flask = shims["flask"]

    def answer(case, shape="http"):
        return read(shape, flask.handle(SHAPES[shape](CASES[case]), FakeContext()))

    echoed = json.loads(answer("get-query-path").body)
    assert echoed["rest"] == "café/x y/日"
    assert echoed["query"] == [["a", "1"], ["a", "2"], ["q", "日本"], ["sp", "a b"],
                               ["amp", "x&y"], ["empty", ""]]
    assert echoed["url"].startswith(f"https://{API_HOST}/echo/caf")
    assert json.loads(answer("post-form").body)["form"] == [
        ["a", "1"], ["a", "2"], ["b", "héllo wörld"], ["c", ""]]
    assert json.loads(answer("request-cookies").body)["cookies"] == [
        ["a", "1"], ["b", "two"], ["c", "%C3%A9"]]
    assert answer("binary-body").body == bytes(range(256)) * 3
    assert answer("large-body", "rest").body == BIG
    assert answer("binary-response").body.startswith(b"\x89PNG\r\n\x1a\n\x00\x01")
    assert answer("utf8-text").body.decode() == "héllo wörld ✓ 日本語 — ünïcödé\n"
    assert answer("redirect").status == 302
    assert answer("redirect").headers["location"] == "/echo/target"
    assert answer("not-found").status == 404
    assert len(answer("set-cookies").cookies) == 3
    assert answer("set-cookies", "alb-single").cookies == answer("set-cookies").cookies[-1:]
