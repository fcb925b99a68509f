"""The Python slim-code loader (warm_web/slim.py) against a real S3-compatible server (moto) on loopback,
on archives made by the real TypeScript packer (lib/private/slim-pack.ts)."""
import datetime
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from slim.server import DyingProxy, pack, start_moto
from warm_web import slim

BUCKET = "warm-web-slim-tests"
FIXED_MTIME = 315532800


# --------------------------------------------------------------------------------------------------
# Fixtures: one server, one realistic tree, one archive for the session

@pytest.fixture(scope="session")
def server():
    srv = start_moto(BUCKET)
    yield srv
    srv.stop()


def _write(path, data=b"", mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


@pytest.fixture(scope="session")
def tree(tmp_path_factory):
    """Django's source (thousands of files, with its .pyc files), plus every kind of entry the format
    must keep: exec bits, symlinks, non-ASCII names, empty dirs, names too long for ustar."""
    import django

    root = str(tmp_path_factory.mktemp("tree") / "code")
    shutil.copytree(os.path.dirname(django.__file__), os.path.join(root, "django"), symlinks=True)
    _write(os.path.join(root, "slimapp.py"), b"def handler(event, context):\n    return {'slim': True}\n")
    _write(os.path.join(root, "bin", "run.sh"), b"#!/bin/sh\necho slim\n", 0o755)
    _write(os.path.join(root, "bin", "tool"), b"\x7fELF not really", 0o700)
    _write(os.path.join(root, "données", "café.txt"), "é ü ß ø".encode())
    _write(os.path.join(root, "日本語", "ファイル.py"), b"X = 1\n")
    _write(os.path.join(root, "📦.txt"), b"emoji")
    _write(os.path.join(root, "empty.txt"), b"")
    _write(os.path.join(root, "big.bin"), hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32))
    long_dir = os.path.join(root, "deep", "a" * 60, "b" * 60, "c" * 60)
    _write(os.path.join(long_dir, "file-" + "x" * 110 + ".txt"), b"long")
    os.makedirs(os.path.join(root, "empty-dir"))
    os.makedirs(os.path.join(root, "nested", "empty", "deeper"))
    os.symlink("django/__init__.py", os.path.join(root, "link-to-file"))
    os.symlink("django/utils", os.path.join(root, "link-to-dir"))
    os.symlink("../slimapp.py", os.path.join(root, "bin", "up-link"))
    os.symlink("ファイル.py", os.path.join(root, "日本語", "リンク.py"))
    os.symlink("c" * 60 + "/" + "file-" + "x" * 110 + ".txt", os.path.join(root, "deep", "a" * 60, "b" * 60, "long-link"))
    return root


@pytest.fixture(scope="session")
def archive(tree, tmp_path_factory, server):
    out = str(tmp_path_factory.mktemp("archive") / "code.tgz")
    result = pack(tree, out, shard_bytes=1024 * 1024)
    with open(out, "rb") as f:
        data = f.read()
    key = f"slim/{result['sha256']}.tgz"
    server.put(BUCKET, key, data)
    return {"result": result, "data": data, "key": key, "path": out}


def slim_env(server, archive, tmp, **overrides):
    r = archive["result"]
    env = {
        "WARM_WEB_SLIM_BUCKET": BUCKET,
        "WARM_WEB_SLIM_KEY": archive["key"],
        "WARM_WEB_SLIM_SHA256": r["sha256"],
        "WARM_WEB_SLIM_SIZE": str(r["size"]),
        "WARM_WEB_SLIM_UNPACKED": str(r["unpackedBytes"]),
        "AWS_ENDPOINT_URL": server.url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDTEST",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "token",
        "AWS_LAMBDA_FUNCTION_NAME": "slim-fn",
        "TMPDIR": str(tmp),
        # The INIT budget is Lambda's; a test on a busy 2-core machine should not fail on it.
        "WARM_WEB_SLIM_DEADLINE_MS": "120000",
    }
    env.update(overrides)
    return env


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    """Each test is a new process as far as the loader's in-memory reuse goes."""
    monkeypatch.setattr(slim, "_loaded", {})
    saved = list(sys.path)
    yield
    sys.path[:] = saved
    sys.modules.pop("slimapp", None)


def snapshot(root):
    """Every entry under root: kind, mode, content hash (.pyc source mtimes masked) or link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                with open(path, "rb") as f:
                    data = bytearray(f.read())
                if rel.endswith(".pyc") and len(data) >= 16:
                    data[8:12] = b"\0\0\0\0"
                out[rel] = ("file", 0o755 if st.st_mode & 0o111 else 0o644, hashlib.sha256(data).hexdigest())
    return out


def emf_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def leftovers(tmp):
    base = os.path.join(str(tmp), "warm-web")
    return sorted(os.listdir(base)) if os.path.isdir(base) else []


# --------------------------------------------------------------------------------------------------
# Round trip

def test_round_trip_of_a_realistic_tree(server, archive, tree, tmp_path, capsys):
    env = slim_env(server, archive, tmp_path)
    path = slim.materialise(env)
    r = archive["result"]
    assert path == os.path.join(str(tmp_path), "warm-web", r["sha256"])
    assert r["files"] > 4000 and r["shards"] > 10
    got = snapshot(path)
    assert got.pop(slim.MARKER)[0] == "file"
    assert got == snapshot(tree)
    # What the snapshot compares, spelled out for the cases the format must keep.
    assert os.stat(os.path.join(path, "bin", "run.sh")).st_mode & 0o777 == 0o755
    assert os.stat(os.path.join(path, "bin", "tool")).st_mode & 0o777 == 0o755
    assert os.stat(os.path.join(path, "slimapp.py")).st_mode & 0o777 == 0o644
    assert os.readlink(os.path.join(path, "link-to-dir")) == "django/utils"
    assert os.path.isfile(os.path.join(path, "link-to-dir", "timezone.py"))
    with open(os.path.join(path, "données", "café.txt"), encoding="utf-8") as f:
        assert f.read() == "é ü ß ø"
    assert os.listdir(os.path.join(path, "nested", "empty", "deeper")) == []
    assert os.path.getsize(os.path.join(path, "empty.txt")) == 0
    # Put first on sys.path: the app imports from the unpacked tree.
    assert sys.path[0] == path
    import slimapp
    assert slimapp.__file__ == os.path.join(path, "slimapp.py")
    assert slimapp.handler({}, None) == {"slim": True}
    # Nothing else left behind, one EMF line.
    assert leftovers(tmp_path) == [r["sha256"]]
    [emf] = emf_lines(capsys.readouterr().out)
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "WarmWeb" and directive["Dimensions"] == [["FunctionName"]]
    assert {m["Name"] for m in directive["Metrics"]} == {"SlimLoadMs", "SlimBytes"}
    assert emf["FunctionName"] == "slim-fn"
    assert emf["SlimBytes"] == r["size"] and emf["SlimLoadMs"] > 0
    assert emf["SlimFiles"] == r["files"] and emf["SlimAttempts"] == 1


def test_pyc_files_stay_valid_for_their_sources(server, archive, tmp_path):
    path = slim.materialise(slim_env(server, archive, tmp_path), emit=False)
    pycache = os.path.join(path, "django", "__pycache__")
    pycs = [n for n in os.listdir(pycache) if n.startswith("__init__.")]
    assert pycs, "the venv's django has compiled .pyc files"
    with open(os.path.join(pycache, pycs[0]), "rb") as f:
        header = f.read(16)
    source = os.stat(os.path.join(path, "django", "__init__.py"))
    assert int(source.st_mtime) == FIXED_MTIME
    assert int.from_bytes(header[4:8], "little") == 0  # timestamp-based
    assert int.from_bytes(header[8:12], "little") == FIXED_MTIME
    assert int.from_bytes(header[12:16], "little") == source.st_size
    assert archive["result"]["pycsRetimed"] > 500


def test_works_with_one_worker_and_many(server, archive, tree, tmp_path):
    for workers in (1, 7):
        tmp = tmp_path / f"w{workers}"
        tmp.mkdir()
        slim._loaded.clear()
        path = slim.materialise(slim_env(server, archive, tmp), workers=workers, emit=False)
        got = snapshot(path)
        got.pop(slim.MARKER)
        assert got == snapshot(tree)


# --------------------------------------------------------------------------------------------------
# Reuse

def test_warm_environment_reuses_without_fetching(server, archive, tmp_path, capsys):
    proxy = DyingProxy(server.port, cut_after=None, die_after=0)
    env = slim_env(server, archive, tmp_path, AWS_ENDPOINT_URL=proxy.url)
    first = slim.materialise(env)
    proxy.close()  # nothing is fetched from here on
    again = slim.materialise(env)
    assert again == first
    assert sys.path.count(first) == 1
    assert len(emf_lines(capsys.readouterr().out)) == 1


def test_a_second_init_in_the_same_tmp_reuses_the_complete_tree(server, archive, tmp_path):
    path = slim.materialise(slim_env(server, archive, tmp_path), emit=False)
    # A new process (a new INIT in the same sandbox), with S3 unreachable: the marker is enough.
    env = slim_env(server, archive, tmp_path, AWS_ENDPOINT_URL="http://127.0.0.1:9")
    code = "import os, sys; from warm_web import slim; print(slim.materialise(os.environ)); import slimapp"
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**env, "PYTHONPATH": os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(here))), "runtime", "python")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == path  # no EMF line: nothing was loaded


def test_a_directory_without_the_marker_is_not_trusted(server, archive, tmp_path):
    final = tmp_path / "warm-web" / archive["result"]["sha256"]
    (final / "django").mkdir(parents=True)
    (final / "slimapp.py").write_text("raise RuntimeError('half-extracted')\n")
    path = slim.materialise(slim_env(server, archive, tmp_path), emit=False)
    import slimapp
    assert slimapp.handler({}, None) == {"slim": True}
    assert path == str(final)
    assert leftovers(tmp_path) == [archive["result"]["sha256"]]


def test_temporary_dirs_of_dead_inits_are_removed(server, archive, tmp_path):
    stale = tmp_path / "warm-web" / ".tmp-0123456789abcdef-999999999-dead"
    (stale / "half").mkdir(parents=True)
    slim.materialise(slim_env(server, archive, tmp_path), emit=False)
    assert leftovers(tmp_path) == [archive["result"]["sha256"]]


def test_two_processes_loading_at_once_both_succeed(server, archive, tmp_path):
    env = slim_env(server, archive, tmp_path)
    here = os.path.dirname(os.path.abspath(__file__))
    code = "import os; from warm_web import slim; print(slim.materialise(os.environ, emit=False))"
    env["PYTHONPATH"] = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(here))), "runtime", "python")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert {o[0].strip() for o in outs} == {str(tmp_path / "warm-web" / archive["result"]["sha256"])}
    assert leftovers(tmp_path) == [archive["result"]["sha256"]]


# --------------------------------------------------------------------------------------------------
# Failures: a clear error naming bucket and key, at most one retry, and a clean /tmp

def _fails(env, match, workers=None):
    with pytest.raises(slim.SlimLoadError) as info:
        slim.materialise(env, workers=workers)
    message = str(info.value)
    assert f"s3://{BUCKET}/{env['WARM_WEB_SLIM_KEY']}" in message
    for part in match:
        assert part in message, message
    assert leftovers(env["TMPDIR"]) == []
    return message


def test_server_dying_mid_stream(server, archive, tmp_path, capsys):
    proxy = DyingProxy(server.port, cut_after=300_000, die_after=1, die=True)
    env = slim_env(server, archive, tmp_path, AWS_ENDPOINT_URL=proxy.url)
    message = _fails(env, ["after 2 attempts"], workers=3)
    # The retry meets the dead server either while connecting or on a connection it had just accepted,
    # which the dying process resets or closes before answering.
    dead = ("then: ConnectionRefusedError", "then: ConnectionResetError", "then: RemoteDisconnected")
    assert any(reason in message for reason in dead), message
    assert proxy.cuts == 1
    assert emf_lines(capsys.readouterr().out) == []


def test_a_cut_connection_is_retried_once(server, archive, tree, tmp_path, capsys):
    proxy = DyingProxy(server.port, cut_after=300_000, die_after=1, die=False)
    env = slim_env(server, archive, tmp_path, AWS_ENDPOINT_URL=proxy.url)
    path = slim.materialise(env, workers=3)
    proxy.close()
    got = snapshot(path)
    got.pop(slim.MARKER)
    assert got == snapshot(tree)
    [emf] = emf_lines(capsys.readouterr().out)
    assert emf["SlimAttempts"] == 2
    assert leftovers(tmp_path) == [archive["result"]["sha256"]]


def test_a_corrupted_byte_is_caught_by_the_shard_hash(server, archive, tmp_path):
    data = bytearray(archive["data"])
    data[len(data) // 2] ^= 0x40
    key = archive["key"] + ".corrupt"
    server.put(BUCKET, key, bytes(data))
    env = slim_env(server, archive, tmp_path, WARM_WEB_SLIM_KEY=key)
    _fails(env, ["SHA-256 mismatch", "corrupted in transit or in S3", "after 2 attempts"])


def test_a_corrupted_index_is_caught_by_the_archive_hash(server, archive, tmp_path):
    data = bytearray(archive["data"])
    data[40] ^= 0x01  # inside the index JSON
    key = archive["key"] + ".badindex"
    server.put(BUCKET, key, bytes(data))
    env = slim_env(server, archive, tmp_path, WARM_WEB_SLIM_KEY=key)
    _fails(env, ["SHA-256 mismatch: the archive's index hashes to"])


def test_a_wrong_hash_in_the_environment(server, archive, tmp_path):
    env = slim_env(server, archive, tmp_path, WARM_WEB_SLIM_SHA256="0" * 64)
    _fails(env, [f"index hashes to {archive['result']['sha256']}", f"WARM_WEB_SLIM_SHA256 is {'0' * 64}"])


def test_a_wrong_size_in_the_environment(server, archive, tmp_path):
    env = slim_env(server, archive, tmp_path, WARM_WEB_SLIM_SIZE=str(archive["result"]["size"] + 1))
    _fails(env, ["WARM_WEB_SLIM_SIZE", "1 attempt"])


def test_a_missing_key_is_not_retried(server, archive, tmp_path):
    env = slim_env(server, archive, tmp_path, WARM_WEB_SLIM_KEY="slim/missing.tgz")
    _fails(env, ["NoSuchKey", "after 1 attempt"])


def test_incomplete_environment():
    with pytest.raises(slim.SlimLoadError, match="WARM_WEB_SLIM_BUCKET"):
        slim.materialise({"WARM_WEB_SLIM_BUCKET": "b"})


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (a real ENOSPC). Needs root; skipped where mounting is not allowed."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def _small_archive(server, tmp_path, files, size):
    src = tmp_path / "small-src"
    for i in range(files):
        _write(str(src / f"d{i % 10}" / f"f{i}.txt"), bytes([i % 256]) * size)
    result = pack(str(src), str(tmp_path / "small.tgz"), shard_bytes=64 * 1024)
    key = f"slim/{result['sha256']}.tgz"
    server.put(BUCKET, key, (tmp_path / "small.tgz").read_bytes())
    return {"result": result, "key": key}


def test_disk_too_small_for_the_code_fails_before_fetching_it(server, tmp_path, tiny_disk):
    small = _small_archive(server, tmp_path, files=20, size=100_000)  # 2 MB of content for 1 MiB
    env = slim_env(server, small, tiny_disk)
    _fails(env, ["no space: the code needs 2.0 MB unpacked", "ephemeral storage", "after 1 attempt"])


def test_disk_full_while_unpacking(server, tmp_path, tiny_disk):
    # 600 KB of content passes the free-space check, but 600 files take 600 pages of a 256-page tmpfs.
    small = _small_archive(server, tmp_path, files=600, size=1000)
    env = slim_env(server, small, tiny_disk)
    _fails(env, ["no space left on the device", "ephemeral storage", "after 1 attempt"])
    st = os.statvfs(str(tiny_disk))
    assert st.f_bfree == st.f_blocks  # everything written was removed again


# --------------------------------------------------------------------------------------------------
# Pieces that need no server

def test_sigv4_matches_the_aws_documentation_example():
    # "GET Object" example of the S3 SigV4 documentation (examplebucket/test.txt, Range bytes=0-9).
    env = {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
           "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
    obj = slim.S3Object("examplebucket", "test.txt", env)
    assert obj.host == "examplebucket.s3.us-east-1.amazonaws.com"
    obj.host_header = "examplebucket.s3.amazonaws.com"
    headers = obj.headers(0, 9, now=datetime.datetime(2013, 5, 24, tzinfo=datetime.timezone.utc))
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def test_endpoint_forms():
    env = {"AWS_REGION": "eu-west-1"}
    assert slim.S3Object("b.with.dots", "k/é x", env).path == "/b.with.dots/k/%C3%A9%20x"
    local = slim.S3Object("bkt", "a/b", {**env, "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:4566/s3/"})
    assert (local.host, local.port, local.path, local.https) == ("127.0.0.1", 4566, "/s3/bkt/a/b", False)
    assert "authorization" not in local.headers(0, 1)  # no credentials, no signature


def _tar_header(name, kind=b"0", size=0, link=b""):
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"0000644\0"
    h[124:136] = b"%011o\0" % size
    h[156:157] = kind
    h[157:157 + len(link)] = link
    h[257:265] = b"ustar\x0000"
    return bytes(h)


@pytest.mark.parametrize("header, message", [
    (_tar_header(b"../evil"), "unsafe path"),
    (_tar_header(b"/etc/passwd"), "unsafe path"),
    (_tar_header(b"a/../../evil"), "unsafe path"),
    (_tar_header(b"link", b"2", link=b"../outside"), "symlink leaves the tree"),
    (_tar_header(b"a/link", b"2", link=b"../../outside"), "symlink leaves the tree"),
    (_tar_header(b"link", b"2", link=b"/etc"), "unsafe symlink"),
    (_tar_header(b"dev", b"3"), "unsupported tar entry type"),
])
def test_unsafe_entries_are_refused(tmp_path, header, message):
    unpacker = slim._Unpacker(os.fsencode(str(tmp_path)), FIXED_MTIME, False, slim._Entries(1 << 20), 1024)
    with pytest.raises(slim._Fail, match=message):
        unpacker.feed(header)
    assert os.listdir(tmp_path) == []
