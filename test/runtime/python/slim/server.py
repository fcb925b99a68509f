"""A real S3-compatible server on loopback for the slim loader's tests: moto's server in a child process
(from whichever Python on this machine has moto), plain-HTTP helpers to fill it (moto's server does
not check signatures), a TCP proxy in front of it that can die in the middle of a response, a server
that trickles bytes, and the packer and hostile-archive crafter run from Python."""
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def moto_python():
    """The first of $WARM_WEB_MOTO_PYTHON, this Python, python3 on PATH that can import moto.server."""
    candidates = [os.environ.get("WARM_WEB_MOTO_PYTHON"), sys.executable, shutil.which("python3"),
                  os.path.expanduser("~/.pyenv/shims/python3")]
    for python in candidates:
        if not python or not os.path.exists(python):
            continue
        ok = subprocess.run([python, "-c", "import moto.server"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).returncode == 0
        if ok:
            return python
    return None


def start_moto(bucket):
    """A moto server with ``bucket`` in it, for a session fixture; fails under CI=true without moto."""
    import pytest

    python = moto_python()
    if python is None:
        message = "no Python with moto on this machine (set WARM_WEB_MOTO_PYTHON)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    srv = MotoServer(python)
    srv.create_bucket(bucket)
    return srv


class MotoServer:
    def __init__(self, python):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError("moto server did not start in 60 s")
                time.sleep(0.1)

    def request(self, method, path, body=None):
        # An explicit type: urllib's default (form-urlencoded) makes the server parse the body as a form.
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read()

    def create_bucket(self, bucket):
        self.request("PUT", f"/{bucket}")

    def put(self, bucket, key, body):
        self.request("PUT", f"/{bucket}/{key}", body)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class DyingProxy:
    """Forwards loopback connections to ``target_port``. The first ``die_after`` connections each get
    ``cut_after`` bytes of the server's response and are then cut; with ``die=True`` the proxy stops
    listening at that point too, like a server that went away mid-stream."""

    def __init__(self, target_port, cut_after, die_after=1, die=True):
        self.target_port = target_port
        self.cut_after = cut_after
        self.die_after = die_after
        self.die = die
        self.cuts = 0
        self.connections = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.sockets = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.closed:
                    client.close()
                    return
                self.connections += 1
                cut = self.cuts < self.die_after
                if cut:
                    self.cuts += 1
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.cut_after if cut else None),
                             daemon=True).start()

    def _pipe(self, src, dst, limit):
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    dst.sendall(data[:limit - sent])
                    self._cut(src, dst)
                    return
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _cut(self, src, dst):
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        if self.die:
            self.close()

    def close(self):
        with self.lock:
            self.closed = True
            sockets, self.sockets = self.sockets, []
        try:
            self.listener.close()
        except OSError:
            pass
        for s in sockets:
            # shutdown first: a bare close() from this thread would not wake the pipe thread's recv,
            # and the connection would hang instead of ending.
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def pack(src, out, shard_bytes=None, exclude=None):
    """Packs ``src`` with the real TypeScript packer; returns its JSON result."""
    import json
    args = ["npx", "ts-node", "--transpile-only", "test/runtime/python/slim/pack_cli.ts", src, out,
            str(shard_bytes or ""), "", ",".join(exclude or [])]
    out_text = subprocess.check_output(args, cwd=ROOT, stderr=subprocess.PIPE, timeout=300)
    return json.loads(out_text)


def hostile(case, out):
    """Writes the hostile archive ``case`` with the Node helper's crafter (test/slim/hostile.ts); returns
    its JSON line (sha256 = WARM_WEB_SLIM_SHA256, size, unpacked, fileSha256)."""
    import json
    args = ["npx", "ts-node", "--transpile-only", "test/slim/hostile.ts", case, out]
    return json.loads(subprocess.check_output(args, cwd=ROOT, stderr=subprocess.PIPE, timeout=300))


class TricklingServer:
    """A loopback HTTP server that answers every ranged GET of ``data`` with 206 and the right headers,
    sends the first ``fast`` bytes of the range at once when the range starts at 0 (none otherwise),
    then one more byte every ``every`` seconds: the slow S3 a deadline is for. With ``hold=(n, k)`` an
    answer from 0 pauses after its first n bytes until k requests have arrived (at most 30 s), so that a
    test knows the other workers are waiting when the rest comes; the first ``cuts`` answers from 0 end
    (the connection shut down) right after their fast bytes. ``ranges`` lists the Range headers in the
    order they arrived; ``sent`` counts the body bytes written."""

    def __init__(self, data, fast, every=5.0, hold=None, cuts=0):
        self.data = data
        self.fast = fast
        self.every = every
        self.hold = hold
        self.cuts = cuts
        self.ranges = []
        self.sent = 0
        self.lock = threading.Condition()
        self.stopped = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        with client:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = client.recv(4096)
                if not chunk:
                    return
                request += chunk
            lines = request.decode("latin1").split("\r\n")[1:]
            spec = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines if ": " in line)}["range"]
            with self.lock:
                self.ranges.append(spec)
                self.lock.notify_all()
            first, _, last = spec[len("bytes="):].partition("-")
            first = int(first)
            last = int(last) if last else len(self.data) - 1
            body = self.data[first:last + 1]
            try:
                client.sendall(self.head(first, last))
                quick = self.fast if first == 0 else 0
                held = self.hold[0] if self.hold and first == 0 else quick
                client.sendall(body[:held])
                self._count(held)
                if held < quick:
                    with self.lock:
                        self.lock.wait_for(lambda: len(self.ranges) >= self.hold[1], timeout=30)
                    client.sendall(body[held:quick])
                    self._count(quick - held)
                if first == 0 and self._cut():
                    client.shutdown(socket.SHUT_RDWR)
                    return
                for pos in range(quick, len(body)):
                    if self.stopped.wait(self.every):
                        return
                    client.sendall(body[pos:pos + 1])
                    self._count(1)
            except OSError:
                return

    def head(self, first, last):
        """The status line and headers of the answer to bytes=first-last."""
        return (f"HTTP/1.1 206 Partial Content\r\nContent-Length: {last + 1 - first}\r\n"
                f"Content-Range: bytes {first}-{last}/{len(self.data)}\r\n\r\n").encode()

    def _cut(self):
        with self.lock:
            self.cuts -= 1
            return self.cuts >= 0

    def _count(self, n):
        with self.lock:
            self.sent += n

    def close(self):
        self.stopped.set()
        self.listener.close()
