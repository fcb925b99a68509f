"""The Python slim-code loader (warm_web/slim.py) against hostile archives and bad days: archives made by
the Node helper's crafter (test/slim/hostile.ts) and the real packer, served by moto on loopback or by a
server that trickles bytes, loaded by real processes sharing one TMPDIR as INITs of one sandbox do."""
import json
import os
import subprocess
import sys
import time

import pytest

from slim.server import ROOT, TricklingServer, hostile, start_moto
from warm_web import slim

BUCKET = "warm-web-slim-faults"
PYTHONPATH = os.path.join(ROOT, "runtime", "python")
# One INIT: load the code, import the app from it, print whose app it is.
INIT = ("import os; from warm_web import slim; slim.materialise(os.environ, emit=False); "
        "import app; print(app.handler(None, None)['app'])")


@pytest.fixture(scope="session")
def server():
    srv = start_moto(BUCKET)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def crafted(server, tmp_path_factory):
    """``crafted(case)``: the hostile.ts archive ``case``, made once and put in the bucket."""
    made = {}
    out_dir = tmp_path_factory.mktemp("hostile")

    def get(case):
        if case not in made:
            out = str(out_dir / f"{case}.slim")
            result = hostile(case, out)
            with open(out, "rb") as f:
                data = f.read()
            key = f"hostile/{case}.slim"
            server.put(BUCKET, key, data)
            made[case] = {"result": result, "data": data, "key": key}
        return made[case]
    return get


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    """Each test is a new process as far as the loader's in-memory reuse goes."""
    monkeypatch.setattr(slim, "_loaded", {})
    saved = list(sys.path)
    yield
    sys.path[:] = saved
    sys.modules.pop("app", None)


@pytest.fixture
def sandbox(tmp_path):
    """TMPDIR two levels down, so that a link chain aiming above it still lands inside tmp_path:
    ``outer/sandbox`` is TMPDIR, and nothing but ``sandbox`` may ever appear in ``outer``."""
    path = tmp_path / "outer" / "sandbox"
    path.mkdir(parents=True)
    return path


def slim_env(endpoint, archive, tmpdir, **overrides):
    r = archive["result"]
    env = {
        "WARM_WEB_SLIM_BUCKET": BUCKET,
        "WARM_WEB_SLIM_KEY": archive["key"],
        "WARM_WEB_SLIM_SHA256": r["sha256"],
        "WARM_WEB_SLIM_SIZE": str(r["size"]),
        "WARM_WEB_SLIM_UNPACKED": str(r["unpacked"]),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDTEST",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "TMPDIR": str(tmpdir),
        # The INIT budget is Lambda's; a test on a busy 2-core machine should not fail on it.
        "WARM_WEB_SLIM_DEADLINE_MS": "120000",
    }
    env.update(overrides)
    return env


def init(env, cwd, code=INIT, timeout=60):
    """One INIT in a new process (the sandbox's next INIT): returns the finished process."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=str(cwd),
                          env={**env, "PYTHONPATH": PYTHONPATH, "PATH": os.environ.get("PATH", "")})


def assert_nothing_outside(sandbox):
    """No tree at the final path, no temporary directory, nothing next to TMPDIR."""
    assert sorted(os.listdir(sandbox.parent)) == ["sandbox"]
    assert sorted(os.listdir(sandbox)) == ["warm-web"]
    assert os.listdir(sandbox / "warm-web") == []


def fails(env, *parts, workers=None):
    with pytest.raises(slim.SlimLoadError) as info:
        slim.materialise(env, workers=workers, emit=False)
    message = str(info.value)
    assert f"s3://{BUCKET}/{env['WARM_WEB_SLIM_KEY']}" in message
    for part in parts:
        assert part in message, message
    return message


def index_length(data):
    return 16 + int.from_bytes(data[14:16], "little") + 10


# --------------------------------------------------------------------------------------------------
# Symlinks: made last, never passed through, never resolving outside

def test_a_symlink_chain_is_refused_and_nothing_lands_outside(server, crafted, sandbox):
    # l -> ., l/x -> .., l/l/l/y -> ../../..; then x/planted/app.py and y/escaped.txt through them.
    env = slim_env(server.url, crafted("symlink-chain"), sandbox)
    fails(env, "symlink 'l/x' -> '..' passes through the symlink 'l'", "after 1 attempt")
    assert_nothing_outside(sandbox)


def test_a_link_resolving_outside_through_another_link_is_refused(server, crafted, sandbox):
    # a/b -> .., c -> a/b/..: each stays inside by its text, but a/b is the root. (The packer refuses
    # such a tree at synth since it resolves links; the crafter makes the archive anyway.)
    fails(slim_env(server.url, crafted("link-through-link"), sandbox),
          "symlink 'c' -> 'a/b/..' resolves outside the tree", "after 1 attempt")
    assert_nothing_outside(sandbox)


# --------------------------------------------------------------------------------------------------
# A replaced shard (the index, and so WARM_WEB_SLIM_SHA256, untouched) plants nothing

def test_a_replaced_shard_plants_nothing_for_the_next_init(server, crafted, sandbox, tmp_path):
    bad = crafted("replaced-shard")
    good = crafted("good")
    assert bad["result"]["sha256"] == good["result"]["sha256"]  # the index is the good one
    env = slim_env(server.url, bad, sandbox)

    first = init(env, tmp_path)
    # The next INIT of the sandbox: the archive is still the replaced one, and must fail the same way,
    # not find a planted marker and import the attacker's app.py.
    second = init(env, tmp_path)
    assert "attacker" not in second.stdout
    assert first.returncode == 1, first.stderr
    assert "SHA-256 mismatch" in first.stderr and "after 2 attempts" in first.stderr, first.stderr
    assert second.returncode == 1, second.stdout + second.stderr
    assert "SHA-256 mismatch" in second.stderr, second.stderr
    assert_nothing_outside(sandbox)

    # The good archive (same WARM_WEB_SLIM_SHA256, so the same final path): the next INIT runs the good app.
    third = init({**env, "WARM_WEB_SLIM_KEY": good["key"]}, tmp_path)
    assert third.returncode == 0, third.stderr
    assert third.stdout.split() == ["good"]
    assert os.listdir(sandbox / "warm-web") == [good["result"]["sha256"]]


# --------------------------------------------------------------------------------------------------
# Only a checkable marker is trusted

def test_a_marker_without_the_loaders_fields_is_not_trusted(server, crafted, sandbox):
    good = crafted("good")
    sha = good["result"]["sha256"]
    final = sandbox / "warm-web" / sha
    final.mkdir(parents=True)
    (final / slim.MARKER).write_text(json.dumps({"sha256": sha}))  # what replaced-shard plants
    (final / "app.py").write_text("def handler(event, context):\n    return {'app': 'attacker'}\n")
    path = slim.materialise(slim_env(server.url, good, sandbox), emit=False)
    assert path == str(final)
    import app
    assert app.handler(None, None) == {"app": "good"}
    assert os.listdir(sandbox / "warm-web") == [sha]


def test_a_link_at_the_final_path_is_not_trusted(server, crafted, sandbox, tmp_path):
    good = crafted("good")
    sha = good["result"]["sha256"]
    # A complete tree, with the right marker, elsewhere; a link to it where the loader looks.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = slim.materialise(slim_env(server.url, good, elsewhere), emit=False)
    slim._loaded.clear()
    final = sandbox / "warm-web" / sha
    final.parent.mkdir()
    os.symlink(other, final)
    path = slim.materialise(slim_env(server.url, good, sandbox), emit=False)
    assert path == str(final)
    assert not os.path.islink(final) and os.path.isfile(final / "app.py")
    assert os.path.isfile(os.path.join(other, slim.MARKER))  # the link was moved, not what it points at


# --------------------------------------------------------------------------------------------------
# Two INITs racing: a complete tree is never moved aside

def test_a_tree_another_init_completes_meanwhile_is_kept(server, crafted, sandbox, tmp_path, monkeypatch):
    good = crafted("good")
    env = slim_env(server.url, good, sandbox)
    final = sandbox / "warm-web" / good["result"]["sha256"]
    seen = {}
    remove_stale = slim._remove_stale

    def other_init_finishes_first(base):
        # Between this INIT's first look (nothing there) and its next step, another INIT of the
        # sandbox publishes the complete tree and imports from it.
        other = init(env, tmp_path)
        assert other.returncode == 0, other.stderr
        # Held open as that INIT's imports would: an fd keeps the inode, so it cannot be reused.
        seen["tree"] = os.open(final, os.O_RDONLY | os.O_DIRECTORY)
        seen["app"] = os.open(final / "app.py", os.O_RDONLY)
        remove_stale(base)

    monkeypatch.setattr(slim, "_remove_stale", other_init_finishes_first)
    try:
        assert slim.materialise(env, emit=False) == str(final)
        tree, app_py = os.fstat(seen["tree"]), os.fstat(seen["app"])
    finally:
        for fd in seen.values():
            os.close(fd)
    # Still the other INIT's tree, at the final path, none of it deleted.
    assert os.path.samestat(tree, os.stat(final)) and tree.st_nlink > 0
    assert os.path.samestat(app_py, os.stat(final / "app.py")) and app_py.st_nlink == 1
    assert os.listdir(sandbox / "warm-web") == [good["result"]["sha256"]]


# --------------------------------------------------------------------------------------------------
# Deterministic format errors: one attempt, whatever the network does

def test_a_duplicate_entry_is_not_retried(server, crafted, sandbox):
    env = slim_env(server.url, crafted("duplicate-entry"), sandbox)
    fails(env, "duplicate entry 'app.py'", "after 1 attempt")
    assert_nothing_outside(sandbox)


def test_an_entry_cut_by_the_shard_end_is_not_retried(server, crafted, sandbox):
    env = slim_env(server.url, crafted("entry-cut-by-shard-end"), sandbox)
    fails(env, "shard 0: 'big.txt' declares 2048 bytes, the shard has 1024 left", "after 1 attempt", workers=1)
    assert_nothing_outside(sandbox)


def test_a_header_that_lies_about_its_size_writes_nothing_past_the_shard(server, crafted, sandbox):
    env = slim_env(server.url, crafted("size-lie"), sandbox)
    fails(env, "shard 1: 'huge.bin' declares 1073741824 bytes, the shard has", "after 1 attempt")
    assert_nothing_outside(sandbox)


def _file(name, data):
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"0000644\0"
    h[124:136] = b"%011o\0" % len(data)
    h[156:157] = b"0"
    h[257:265] = b"ustar\x0000"
    return bytes(h) + data + bytes(-len(data) % 512)


def test_declared_sizes_bound_what_is_written(tmp_path):
    root = os.fsencode(str(tmp_path))
    # No entry may declare more than its shard has left (checked before the file is created).
    unpacker = slim._Unpacker(root, 0, False, slim._Entries(1 << 40), 1024)
    lie = bytearray(_file(b"huge.bin", b"x" * 100))
    lie[124:136] = b"%011o\0" % (1 << 30)
    with pytest.raises(slim._Fail, match="'huge.bin' declares 1073741824 bytes, the shard has 512 left"):
        unpacker.feed(bytes(lie) + bytes(512))
    assert os.listdir(tmp_path) == []
    # Nor may the files of all shards add up to more than the index's unpacked bytes.
    entries = slim._Entries(100)
    slim._Unpacker(root, 0, False, entries, 1 << 20).feed(_file(b"a.txt", b"a" * 80))
    with pytest.raises(slim._Fail, match="'b.txt' takes the files past the index's 100 unpacked bytes"):
        slim._Unpacker(root, 0, False, entries, 1 << 20).feed(_file(b"b.txt", b"b" * 80))
    assert os.listdir(tmp_path) == [b"a.txt".decode()]
    # A size field that is not octal digits is a header that lies, not a negative size.
    bad = bytearray(_file(b"neg.txt", b""))
    bad[124:136] = b"-0000000001\0"
    with pytest.raises(slim._Fail, match="corrupt tar header"):
        slim._Unpacker(root, 0, False, slim._Entries(100), 1 << 20).feed(bytes(bad))


# --------------------------------------------------------------------------------------------------
# A deadline for the whole load

def test_a_trickling_server_meets_the_deadline(crafted, sandbox, tmp_path):
    good = crafted("good")
    data = good["data"]
    shards = json.loads(data[16:index_length(data) - 10])["shards"]
    fast = index_length(data) + 10  # the index and 10 bytes of shard 0, then 1 byte every 5 s
    assert fast < index_length(data) + shards[0][0]
    trickle = TricklingServer(data, fast=fast, every=5.0)
    try:
        env = slim_env(trickle.url, good, sandbox, WARM_WEB_SLIM_DEADLINE_MS="1000")
        code = "import os; from warm_web import slim; slim.materialise(os.environ, workers=2, emit=False)"
        proc = init(env, tmp_path, code=code, timeout=60)
    finally:
        trickle.close()
    assert proc.returncode == 1, proc.stderr
    expected = (f"the load passed its deadline of 1000 ms (WARM_WEB_SLIM_DEADLINE_MS) with {fast} of "
                f"{len(data)} archive bytes fetched, 0 of {len(shards)} shards verified")
    assert expected in proc.stderr, proc.stderr
    assert "after 1 attempt" in proc.stderr
    assert trickle.ranges[0] == f"bytes=0-{len(data) - 1}" and len(trickle.ranges) == 2
    assert trickle.sent == fast
    assert os.listdir(sandbox / "warm-web") == []


def test_a_failed_attempt_ends_at_once_and_the_deadline_spans_both(crafted, sandbox, tmp_path):
    good = crafted("good")
    data = good["data"]
    shards = json.loads(data[16:index_length(data) - 10])["shards"]
    fast = index_length(data) + 10
    # The first attempt's main GET gets the index, then (once the other worker's GET has arrived, so that
    # worker is waiting on a trickle) 10 bytes more, and is cut: that must end the attempt at once.
    trickle = TricklingServer(data, fast=fast, every=5.0, hold=(index_length(data), 2), cuts=1)
    try:
        env = slim_env(trickle.url, good, sandbox, WARM_WEB_SLIM_DEADLINE_MS="2000")
        code = "import os; from warm_web import slim; slim.materialise(os.environ, workers=2, emit=False)"
        proc = init(env, tmp_path, code=code, timeout=60)
    finally:
        trickle.close()
    assert proc.returncode == 1, proc.stderr
    assert "after 2 attempts: shard 0: the stream ended" in proc.stderr, proc.stderr
    # Attempt 2 got the same fast bytes: the count is of the whole load.
    assert (f"; then: the load passed its deadline of 2000 ms (WARM_WEB_SLIM_DEADLINE_MS) with {2 * fast} of "
            f"{len(data)} archive bytes fetched, 0 of {len(shards)} shards verified") in proc.stderr, proc.stderr
    assert [r.split("-")[0] for r in trickle.ranges].count("bytes=0") == 2 and len(trickle.ranges) >= 3
    assert os.listdir(sandbox / "warm-web") == []


@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf"])
def test_a_bad_deadline_is_named(value, tmp_path):
    env = {"WARM_WEB_SLIM_BUCKET": "b", "WARM_WEB_SLIM_KEY": "k", "WARM_WEB_SLIM_SHA256": "0" * 64,
           "WARM_WEB_SLIM_DEADLINE_MS": value, "TMPDIR": str(tmp_path)}
    with pytest.raises(slim.SlimLoadError) as info:
        slim.materialise(env)
    assert str(info.value) == (f"warm-web slim: WARM_WEB_SLIM_DEADLINE_MS={value!r} is not a positive number "
                               "of milliseconds")
    assert os.listdir(tmp_path) == []


def test_the_deadline_counts_from_the_start_of_init(crafted, sandbox):
    good = crafted("good")
    # INIT began 10 s ago (the handler passes its start): nothing is fetched, nothing is written.
    env = slim_env("http://127.0.0.1:9", good, sandbox)
    del env["WARM_WEB_SLIM_DEADLINE_MS"]
    with pytest.raises(slim.SlimLoadError) as info:
        slim.materialise(env, emit=False, started=time.perf_counter() - 10)
    assert str(info.value).endswith(
        "after 1 attempt: the load passed its deadline of 9500 ms (the INIT budget; WARM_WEB_SLIM_DEADLINE_MS "
        f"overrides it) with 0 of {good['result']['size']} archive bytes fetched")
    # Nothing but the note that this load ran out of time.
    assert os.listdir(sandbox / "warm-web") == [f".out-of-time-{good['result']['sha256']}"]


def test_after_a_load_that_ran_out_of_time_the_next_init_gets_the_long_budget(server, crafted, sandbox):
    # Lambda runs an on-demand INIT that failed again inside the first invoke, with the function's timeout.
    good = crafted("good")
    env = slim_env(server.url, good, sandbox)
    del env["WARM_WEB_SLIM_DEADLINE_MS"]
    with pytest.raises(slim.SlimLoadError, match="passed its deadline of 9500 ms"):
        slim.materialise(env, emit=False, started=time.perf_counter() - 10)
    note = sandbox / "warm-web" / f".out-of-time-{good['result']['sha256']}"
    assert slim.deadline_ms(env, str(note)) == (125000.0, "the budget of an INIT after one that ran out of time", False)
    # The same INIT start, 10 s ago, now within budget: the tree loads, and the note goes.
    path = slim.materialise(env, emit=False, started=time.perf_counter() - 10)
    assert os.path.isfile(os.path.join(path, ".warm-web-slim"))
    assert sorted(os.listdir(sandbox / "warm-web")) == [good["result"]["sha256"]]


def test_the_default_deadline_is_the_init_budget():
    assert slim.deadline_ms({}) == (9500.0, "the INIT budget; WARM_WEB_SLIM_DEADLINE_MS overrides it", True)
    assert slim.deadline_ms({"WARM_WEB_SLIM_DEADLINE_MS": "250"}) == (250.0, "WARM_WEB_SLIM_DEADLINE_MS", False)
    for kind in ("provisioned-concurrency", "snap-start"):
        assert slim.deadline_ms({"AWS_LAMBDA_INITIALIZATION_TYPE": kind}) == (125000.0, f"the budget of a {kind} INIT", False)
    assert slim.deadline_ms({"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"})[0] == 9500.0


# --------------------------------------------------------------------------------------------------
# The other hostile archives both loaders are held to (test/slim/hostile.ts; the Node suite runs them too)

@pytest.mark.parametrize("case, part", [
    ("dot-link", "shard 0: unsafe path in archive: './up'"),
    ("marker-entry", "shard 0: the archive has an entry named '.warm-web-slim', the loader's own marker"),
    ("link-over-entry", "symlink 'lib': other entries of the archive pass through it"),
    ("pax-bomb", "shard 0: a pax header declares 100016 bytes (102400 left in the shard, at most 65536)"),
    ("shard-not-gzip", "shard 0: Error -3 while decompressing data: incorrect header check"),
])
def test_every_other_hostile_archive_is_refused_once_and_leaves_nothing(server, crafted, sandbox, case, part):
    fails(slim_env(server.url, crafted(case), sandbox), f"after 1 attempt: {part}")
    assert_nothing_outside(sandbox)
