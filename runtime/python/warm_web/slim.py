"""Slim code: fetch the app's code archive from S3 and unpack it into /tmp during INIT.

The construct packs code that is too big for Lambda's 250 MB limit into one archive
(``lib/private/slim-pack.ts``, format in ``docs/SLIM_FORMAT.md``) under a content-hash key and sets:

``WARM_WEB_SLIM_BUCKET``, ``WARM_WEB_SLIM_KEY``, ``WARM_WEB_SLIM_SIZE`` (archive bytes),
``WARM_WEB_SLIM_SHA256`` (SHA-256 of the archive's index member, which holds every shard's SHA-256),
``WARM_WEB_SLIM_UNPACKED`` (bytes of file content once unpacked).

``materialise(os.environ)`` runs before the app is imported. It reads the index with one small ranged
GET, then streams the shards over a few parallel ranged GETs; each worker thread hashes, inflates and
writes its shards as the bytes arrive (zlib, hashlib and file writes release the GIL, so the workers use
every core). Everything lands in a fresh private temporary directory; symlinks are made only once every
shard has been verified (so nothing written while a shard is unverified can leave that directory), then
a marker naming the archive's hash is written and the directory renamed to ``$TMPDIR/warm-web/<sha256>``,
so that path only ever holds a complete tree. The whole load has a deadline (the INIT budget,
``WARM_WEB_SLIM_DEADLINE_MS``). A failure that another attempt could cure is retried once; then
``SlimLoadError`` names the bucket, key and cause, and the temporary directory is gone.

Standard library only: boto3 would add ~0.2 s to INIT just to be imported.
"""
import datetime
import errno
import fcntl
import hashlib
import hmac
import http.client
import json
import os
import shutil
import socket
import stat
import sys
import threading
import time
import urllib.parse
import zlib

FORMAT = "warm-web-slim"
VERSION = 1
MARKER = ".warm-web-slim"
INDEX_SUBFIELD = b"WW"
CHUNK = 256 * 1024
INFLATE_MAX = 1 << 20
TIMEOUT_S = 20.0
DEFAULT_DEADLINE_MS = 9500.0
# Provisioned-concurrency and SnapStart INITs, and the INIT Lambda runs again inside the first invoke
# after one ran out of time, may take longer: Lambda allows them 130 s or the function timeout.
LONG_DEADLINE_MS = 125_000.0
OUT_OF_TIME = ".out-of-time-"  # $TMPDIR/warm-web/.out-of-time-<sha256>: the last load ran out of time
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_loaded = {}
_loaded_lock = threading.Lock()


class SlimLoadError(RuntimeError):
    """The code archive could not be fetched or unpacked."""


class _Fail(Exception):
    """One attempt failed; ``retry`` says whether another attempt could help."""

    def __init__(self, message, retry=True):
        super().__init__(message)
        self.retry = retry


# --------------------------------------------------------------------------------------------------
# S3 GetObject with SigV4 (just what a ranged GET needs)

def _quote(s):
    return urllib.parse.quote(s, safe="-_.~")


class S3Object:
    """Ranged GETs of one S3 object, signed with the credentials Lambda puts in the environment."""

    def __init__(self, bucket, key, env):
        self.bucket = bucket
        self.key = key
        self.region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.access_key = env.get("AWS_ACCESS_KEY_ID")
        self.secret_key = env.get("AWS_SECRET_ACCESS_KEY")
        self.token = env.get("AWS_SESSION_TOKEN")
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        quoted_key = "/".join(_quote(part) for part in key.split("/"))
        if endpoint:
            url = urllib.parse.urlsplit(endpoint)
            self.https = url.scheme == "https"
            self.host = url.hostname
            self.port = url.port
            base = url.path.rstrip("/")
            self.path = f"{base}/{_quote(bucket)}/{quoted_key}"
        elif "." in bucket:
            # Virtual-hosted names with dots break TLS hostname checks: path style.
            self.https, self.host, self.port = True, f"s3.{self.region}.amazonaws.com", None
            self.path = f"/{_quote(bucket)}/{quoted_key}"
        else:
            self.https, self.host, self.port = True, f"{bucket}.s3.{self.region}.amazonaws.com", None
            self.path = f"/{quoted_key}"
        default_port = 443 if self.https else 80
        self.host_header = self.host if self.port in (None, default_port) else f"{self.host}:{self.port}"
        self._signing = None

    def where(self):
        return f"s3://{self.bucket}/{self.key}"

    def connect(self, watch):
        """A new connection, shut down by ``watch`` when the load's deadline passes."""
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=watch.timeout())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=watch.timeout())
        return watch.track(conn)

    def headers(self, first, last, now=None):
        """The request headers of GET bytes=first-last, SigV4-signed when there are credentials."""
        headers = {"host": self.host_header, "range": f"bytes={first}-{last}"}
        if not (self.access_key and self.secret_key):
            return headers
        now = now or datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        headers["x-amz-content-sha256"] = EMPTY_SHA256
        headers["x-amz-date"] = amz_date
        if self.token:
            headers["x-amz-security-token"] = self.token
        names = sorted(headers)
        canonical = "\n".join([
            "GET", self.path, "",
            "".join(f"{n}:{headers[n].strip()}\n" for n in names),
            ";".join(names), EMPTY_SHA256,
        ])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join([
            "AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        signing = self._signing
        if signing is None or signing[0] != day:
            k = hmac.new(f"AWS4{self.secret_key}".encode(), day.encode(), hashlib.sha256).digest()
            for part in (self.region, "s3", "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            signing = self._signing = (day, k)
        signature = hmac.new(signing[1], to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}")
        return headers

    def get(self, conn, first, last):
        """Sends the ranged GET on ``conn``; returns the response once it is known to be the range asked."""
        conn.request("GET", self.path, headers=self.headers(first, last))
        resp = conn.getresponse()
        if resp.status != 206:
            body = resp.read(2048).decode("utf-8", "replace")
            code = _xml_tag(body, "Code") or f"HTTP {resp.status}"
            message = _xml_tag(body, "Message") or body.strip()[:200]
            retry = resp.status >= 500 or resp.status in (408, 429)
            if resp.status == 200:
                # The server ignored Range: never read a whole archive where a range was asked for.
                code, message, retry = "HTTP 200", "the server ignored the Range header", False
            raise _Fail(f"GET bytes={first}-{last}: {code}: {message}", retry=retry)
        return resp


def _xml_tag(text, tag):
    start = text.find(f"<{tag}>")
    end = text.find(f"</{tag}>")
    return text[start + len(tag) + 2:end] if 0 <= start < end else None


# --------------------------------------------------------------------------------------------------
# Index

def parse_index(head, expected_sha256, expected_size):
    """Checks the index member at the start of ``head``; returns (index, member length)."""
    if len(head) < 26 or head[:4] != b"\x1f\x8b\x08\x04" or head[12:14] != INDEX_SUBFIELD:
        raise _Fail("not a warm-web slim archive (no index member at the start)", retry=False)
    length = 16 + int.from_bytes(head[14:16], "little") + 10
    member = bytes(head[:length])
    if len(member) < length:
        raise _Fail("truncated index member")
    digest = hashlib.sha256(member).hexdigest()
    if digest != expected_sha256:
        raise _Fail(f"SHA-256 mismatch: the archive's index hashes to {digest}, "
                    f"WARM_WEB_SLIM_SHA256 is {expected_sha256}")
    index = json.loads(member[16:length - 10])
    if index.get("format") != FORMAT or index.get("v") != VERSION:
        raise _Fail(f"unsupported archive format {index.get('format')!r} v{index.get('v')!r}", retry=False)
    size = length + sum(s[0] for s in index["shards"])
    if expected_size is not None and size != expected_size:
        raise _Fail(f"the index describes {size} bytes, WARM_WEB_SLIM_SIZE is {expected_size}", retry=False)
    return index, length


# --------------------------------------------------------------------------------------------------
# Unpacking one shard (a tar fragment)
#
# A shard's bytes are only known to be the index's once its last byte is hashed, and a shard can be
# hundreds of MB, so it is written as it streams, into the attempt's private temporary directory (0700,
# a random name no later INIT trusts). No symlink is created there until every shard is verified: while
# shards stream, every path under the directory is a real file or directory, so no write can leave it
# (and O_NOFOLLOW|O_EXCL guard the last component). Symlinks are made at the end, by ``_make_links``.

_O_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_O_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_ZERO_BLOCK = bytes(512)
# A pax header holds a long path or link target (at most 4 KiB on Linux): more is not one of ours.
PAX_MAX = 64 * 1024
_MARKER_NAME = MARKER.encode()


def _show(name):
    """A name from the archive, for messages."""
    return repr(name.decode("utf-8", "replace"))


def _safe_name(name):
    parts = name.split(b"/")
    if (not name or name.startswith(b"/") or b"\\" in name
            or any(part in (b"", b".", b"..") for part in parts)):
        raise _Fail(f"unsafe path in archive: {_show(name)}", retry=False)
    if name == _MARKER_NAME:
        raise _Fail(f"the archive has an entry named {_show(name)}, the loader's own marker", retry=False)


def _safe_link(name, target):
    if not target or target.startswith(b"/"):
        raise _Fail(f"unsafe symlink in archive: {_show(name)} -> {_show(target)}", retry=False)
    depth = name.count(b"/")
    for part in target.split(b"/"):
        if part == b"..":
            depth -= 1
            if depth < 0:
                raise _Fail(f"symlink leaves the tree: {_show(name)} -> {_show(target)}", retry=False)
        elif part not in (b"", b"."):
            depth += 1


def _number(field, what):
    """A ustar octal field (NUL or space terminated); anything else is a header that lies."""
    digits = field.split(b"\x00", 1)[0].strip(b" ")
    if not digits:
        return 0
    if not digits.isdigit():
        raise _Fail(f"corrupt tar header ({what} field {bytes(field)!r})")
    return int(digits, 8)


class _Entries:
    """What the shards of one attempt have declared so far, across workers: each name at most once,
    and file bytes adding up to no more than the index's unpacked total."""

    def __init__(self, unpacked):
        self.lock = threading.Lock()
        self.names = set()
        self.unpacked = unpacked
        self.declared = 0

    def admit(self, name, size):
        with self.lock:
            if name in self.names:
                raise _Fail(f"duplicate entry {_show(name)}")
            self.names.add(name)
            self.declared += size
            if self.declared > self.unpacked:
                raise _Fail(f"{_show(name)} takes the files past the index's {self.unpacked} unpacked bytes")


class _Unpacker:
    """A streaming tar reader that writes what it reads under ``root`` (bytes path); ``limit`` is the
    shard's tar bytes (from the index), which no entry may declare more than is left of."""

    def __init__(self, root, mtime, fix_mode, entries, limit):
        self.root = root + b"/"
        self.times = (mtime, mtime)
        self.fix_mode = fix_mode
        self.registry = entries
        self.limit = limit
        self.fed = 0
        self.pending = b""
        self.fd = -1
        self.remaining = 0
        self.skip = 0
        self.pax_body = None
        self.pax_left = 0
        self.pax = None
        self.ended = False
        self.entries = 0
        self.files = 0
        self.bytes = 0
        self.dir_paths = []
        self.links = []

    def feed(self, data):
        n = len(data)
        pos = 0
        while pos < n:
            if self.remaining:
                take = min(self.remaining, n - pos)
                self._write(memoryview(data)[pos:pos + take])
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self._close()
                continue
            if self.pax_left:
                take = min(self.pax_left, n - pos)
                self.pax_body += data[pos:pos + take]
                pos += take
                self.pax_left -= take
                if not self.pax_left:
                    self._pax_done()
                continue
            if self.skip:
                take = min(self.skip, n - pos)
                pos += take
                self.skip -= take
                continue
            if self.pending or n - pos < 512:
                need = 512 - len(self.pending)
                self.pending += data[pos:pos + need]
                pos += min(need, n - pos)
                if len(self.pending) < 512:
                    continue
                header = self.pending
                self.pending = b""
            else:
                header = data[pos:pos + 512]
                pos += 512
            self._header(header, self.limit - self.fed - pos)
        self.fed += n

    def finish(self):
        if self.remaining or self.pending or self.skip or self.pax_left or self.pax is not None:
            raise _Fail("the shard ends inside an entry")

    def close_quietly(self):
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1

    # -- entries

    def _header(self, h, left):
        """One 512-byte header; ``left`` is what the shard has after it."""
        if self.ended or h == _ZERO_BLOCK:
            if h != _ZERO_BLOCK:
                raise _Fail("data after the end-of-archive blocks")
            self.ended = True
            return
        if h[257:263] != b"ustar\x00":
            raise _Fail("corrupt tar header (no ustar magic)")
        size = _number(h[124:136], "size")
        kind = h[156]
        if kind == 0x78:  # 'x': pax extended header for the next entry
            if size > min(left, PAX_MAX):
                raise _Fail(f"a pax header declares {size} bytes ({left} left in the shard, at most {PAX_MAX})")
            self.pax_body = b""
            self.pax_left = size
            self.skip = (-size) % 512
            if not size:
                self._pax_done()
            return
        pax = self.pax
        self.pax = None
        name = h[0:100].split(b"\x00", 1)[0]
        prefix = h[345:500].split(b"\x00", 1)[0]
        if prefix:
            name = prefix + b"/" + name
        if pax:
            name = pax.get(b"path", name)
            if b"size" in pax:
                if not pax[b"size"].isdigit():
                    raise _Fail(f"corrupt pax size {pax[b'size']!r} for {_show(name)}")
                size = int(pax[b"size"])
        self.entries += 1
        try:
            if kind == 0x35:  # '5' directory
                name = name.rstrip(b"/")
                _safe_name(name)
                self.registry.admit(name, 0)
                path = self.root + name
                try:
                    os.mkdir(path, 0o755)
                except FileExistsError:
                    pass  # made as the parent of an entry of a shard that was unpacked first
                except FileNotFoundError:
                    os.makedirs(path, 0o755, exist_ok=True)
                self.dir_paths.append(path)
            elif kind == 0x30 or kind == 0:  # '0' regular file
                _safe_name(name)
                if size > left:
                    raise _Fail(f"{_show(name)} declares {size} bytes, the shard has {left} left")
                self.registry.admit(name, size)
                mode = _number(h[100:108], "mode") & 0o777
                path = self.root + name
                try:
                    fd = os.open(path, _O_CREATE, mode)
                except FileNotFoundError:
                    # Its directory's entry is in another shard that is still being unpacked.
                    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
                    fd = os.open(path, _O_CREATE, mode)
                if self.fix_mode:
                    os.fchmod(fd, mode)
                self.fd = fd
                self.files += 1
                self.bytes += size
                self.skip = (-size) % 512
                self.remaining = size
                if not size:
                    self._close()
            elif kind == 0x32:  # '2' symlink: made once every shard is verified
                _safe_name(name)
                target = h[157:257].split(b"\x00", 1)[0]
                if pax:
                    target = pax.get(b"linkpath", target)
                _safe_link(name, target)
                self.registry.admit(name, 0)
                self.links.append((name, target))
            else:
                raise _Fail(f"unsupported tar entry type {chr(kind)!r} for {_show(name)}", retry=False)
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            # Another entry took the path, or a file is where a directory of this path should be.
            raise _Fail(f"{_show(name)} collides with another entry of the archive ({exc.strerror})") from None

    def _pax_done(self):
        records = {}
        body = self.pax_body
        pos = 0
        while pos < len(body):
            space = body.index(b" ", pos)
            length = int(body[pos:space])
            if length <= space - pos:
                raise _Fail(f"corrupt pax record {body[pos:space + 1]!r}")
            key, _, value = body[space + 1:pos + length - 1].partition(b"=")
            records[key] = value
            pos += length
        self.pax = records
        self.pax_body = None

    def _write(self, view):
        while view:
            written = os.write(self.fd, view)
            if written <= 0:
                raise OSError(errno.ENOSPC, "short write")
            view = view[written:]

    def _close(self):
        fd = self.fd
        self.fd = -1
        os.utime(fd, self.times)
        os.close(fd)


def _make_links(root, links):
    """Creates the archive's symlinks (``(name, target)`` in archive order) under ``root``, once every
    shard is verified. A link whose directory is missing, is not a directory or is itself a link (a
    chain such as ``l -> .``, ``l/x -> ..``) is refused, and so is any link that, once all exist,
    resolves outside the tree."""
    checked = {root}
    made = []
    for name, target in links:
        parent = root
        for part in name.split(b"/")[:-1]:
            parent = parent + b"/" + part
            if parent in checked:
                continue
            where = _show(parent[len(root) + 1:])
            try:
                st = os.lstat(parent)
            except FileNotFoundError:
                raise _Fail(f"symlink {_show(name)}: its directory {where} is not in the archive",
                            retry=False) from None
            if stat.S_ISLNK(st.st_mode):
                raise _Fail(f"symlink {_show(name)} -> {_show(target)} passes through the symlink {where}",
                            retry=False)
            if not stat.S_ISDIR(st.st_mode):
                raise _Fail(f"symlink {_show(name)}: {where} is not a directory", retry=False)
            checked.add(parent)
        path = root + b"/" + name
        try:
            os.symlink(target, path)
        except FileExistsError:
            raise _Fail(f"symlink {_show(name)}: other entries of the archive pass through it",
                        retry=False) from None
        made.append((name, target, path))
    top = os.path.realpath(root)
    for name, target, path in made:
        real = os.path.realpath(path)
        if real != top and not real.startswith(top + b"/"):
            raise _Fail(f"symlink {_show(name)} -> {_show(target)} resolves outside the tree", retry=False)


# --------------------------------------------------------------------------------------------------
# The load's deadline

def _shut(conn):
    sock = conn.sock
    if sock is not None:
        try:
            # socket.socket's own shutdown, also for TLS: it only wakes the reader, which then fails.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


class _Watch:
    """The whole load's deadline (both attempts). When it passes, every connection is shut down, so a
    server that trickles bytes cannot hold INIT: readers fail at once and the deadline is the error."""

    def __init__(self, started, ms, source, size):
        self.at = started + ms / 1000
        self.ms = ms
        self.source = source
        self.size = size
        self.lock = threading.Lock()
        self.conns = []
        self.timer = None
        self.received = 0  # archive bytes read from S3, all attempts
        self.shards = None
        self.verified = 0  # shards verified in the current attempt

    def left(self):
        return self.at - time.perf_counter()

    def passed(self):
        return self.left() <= 0

    def arm(self):
        """Starts an attempt: fails at once when the deadline has already passed."""
        if self.passed():
            raise self.error()
        self.verified = 0
        self.timer = threading.Timer(self.left(), self.shut_all)
        self.timer.daemon = True
        self.timer.start()

    def disarm(self):
        self.timer.cancel()
        with self.lock:
            self.conns = []

    def timeout(self):
        """A socket timeout: a stalled read fails by the deadline at the latest."""
        return max(0.001, min(TIMEOUT_S, self.left()))

    def track(self, conn):
        with self.lock:
            self.conns.append(conn)
        return conn

    def shut_all(self):
        """Ends every connection of the attempt: its readers fail at once."""
        with self.lock:
            conns = list(self.conns)
        for conn in conns:
            _shut(conn)

    def error(self):
        size = f" of {self.size}" if self.size is not None else ""
        shards = f", {self.verified} of {self.shards} shards verified" if self.shards is not None else ""
        return _Fail(f"the load passed its deadline of {self.ms:g} ms ({self.source}) with "
                     f"{self.received}{size} archive bytes fetched{shards}", retry=False)


# --------------------------------------------------------------------------------------------------
# One attempt

class _Run:
    """Shared state of one attempt: the work list, the first failure, the totals."""

    def __init__(self, s3, index, index_length, root, workers, watch):
        self.s3 = s3
        self.index = index
        self.root = root
        self.watch = watch
        self.lock = threading.Lock()
        self.failure = None
        self.entries = _Entries(index["unpacked"])
        self.files = 0
        self.bytes = 0
        self.dir_paths = []
        self.links = {}
        self.fetched = 0
        self.requests = 0
        shards = index["shards"]
        offsets = []
        offset = index_length
        for shard in shards:
            offsets.append(offset)
            offset += shard[0]
        self.offsets = offsets
        # Cost of a shard: inflating its bytes plus creating its entries (one entry ~ 8 KB of inflate).
        self.cost = [s[1] + 8192 * s[2] for s in shards]
        self.pieces = _split(self.cost, workers)
        umask = os.umask(0o022)
        os.umask(umask)
        self.fix_mode = bool(umask & 0o755)

    def all_links(self):
        """Every symlink of the archive, in archive order."""
        return [link for i in sorted(self.links) for link in self.links[i]]

    def first_piece(self):
        """The piece that starts at shard 0: the first GET's response runs on into it."""
        piece = self.pieces[0]
        piece.taken = True
        return piece

    def fail(self, exc):
        with self.lock:
            first = self.failure is None
            if first:
                self.failure = exc
        if first:
            # The attempt is lost: wake the workers waiting on a slow read rather than wait for them.
            self.watch.shut_all()

    def claim(self):
        """The next run of shards [first, last) to fetch: an unstarted piece, else half of a running one."""
        with self.lock:
            if self.failure is not None:
                return None
            for piece in self.pieces:
                if not piece.taken:
                    piece.taken = True
                    return piece
            # Work stealing: take the back half of the piece with the most unstarted work.
            best, best_cost = None, 0
            for piece in self.pieces:
                left = sum(self.cost[piece.next + 1:piece.end])
                if left > best_cost:
                    best, best_cost = piece, left
            if best is None:
                return None
            goal = best_cost / 2
            cut = best.end
            acc = 0
            while cut - 1 > best.next and acc + self.cost[cut - 1] <= goal + 1:
                cut -= 1
                acc += self.cost[cut]
            if cut >= best.end:
                return None
            stolen = _Piece(cut, best.end)
            stolen.taken = True
            best.end = cut
            self.pieces.append(stolen)
            return stolen

    def worker(self, conn=None, piece=None, resp=None):
        """Fetches and unpacks pieces until there is no work left (or a failure elsewhere)."""
        try:
            while True:
                if piece is None:
                    piece = self.claim()
                    if piece is None:
                        return
                conn = self._fetch(piece, conn, resp)
                piece = resp = None
        except BaseException as exc:  # noqa: BLE001 - recorded, then raised by the caller
            self.fail(_as_fail(exc, self.root))
        finally:
            if conn is not None:
                conn.close()

    def _fetch(self, piece, conn, resp=None):
        """Unpacks ``piece`` from ``resp`` (or from a new ranged GET); returns the connection if it can
        be reused."""
        if resp is None:
            shards = self.index["shards"]
            first = self.offsets[piece.first]
            last = self.offsets[piece.end - 1] + shards[piece.end - 1][0] - 1
            if conn is None:
                conn = self.s3.connect(self.watch)
            resp = self.s3.get(conn, first, last)
            with self.lock:
                self.requests += 1
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        mtime = self.index.get("mtime", 0)
        clean = True
        i = piece.first
        while True:
            with self.lock:
                if self.failure is not None:
                    clean = False
                    break
                if i >= piece.end:
                    break
                piece.next = i
            if not self._shard(i, resp, view, mtime):
                clean = False
                break
            i += 1
        if clean and resp.length == 0:
            resp.read()  # completes the response, so the connection can be reused
            return conn
        # Cut short (the rest was stolen, the response ran on past this piece, or a failure): this
        # connection is in the middle of a body and cannot be reused.
        conn.close()
        return None

    def _shard(self, i, resp, view, mtime):
        clen, ulen, entries, sha256 = self.index["shards"][i]
        digest = hashlib.sha256()
        inflate = zlib.decompressobj(31)
        unpacker = _Unpacker(self.root, mtime, self.fix_mode, self.entries, ulen)
        left = clen
        out = 0
        broken = None
        try:
            while left:
                n = resp.readinto(view[:min(CHUNK, left)])
                if not n:
                    raise _Fail(f"shard {i}: the stream ended {left} bytes early")
                left -= n
                chunk = view[:n]
                digest.update(chunk)
                if broken is None:
                    try:
                        data = inflate.decompress(chunk, INFLATE_MAX)
                        while True:
                            out += len(data)
                            if out > ulen:
                                raise _Fail(f"it inflates past its {ulen} bytes")
                            unpacker.feed(data)
                            if not inflate.unconsumed_tail:
                                break
                            data = inflate.decompress(inflate.unconsumed_tail, INFLATE_MAX)
                    except (zlib.error, _Fail, ValueError, IndexError) as exc:
                        # Read the rest: a hash mismatch is the better explanation of a corrupt stream.
                        broken = exc
                        unpacker.close_quietly()
                with self.lock:
                    self.watch.received += n
                    if self.failure is not None:
                        unpacker.close_quietly()
                        return False
            got = digest.hexdigest()
            if got != sha256:
                raise _Fail(f"shard {i}: SHA-256 mismatch (expected {sha256}, got {got}): "
                            "the archive was corrupted in transit or in S3")
            # The bytes are the ones the index names: what is wrong with them is wrong on every attempt.
            try:
                if broken is not None:
                    raise broken
                if not inflate.eof or inflate.unused_data or out != ulen:
                    raise _Fail(f"inflated {out} of {ulen} bytes")
                unpacker.finish()
                if unpacker.entries != entries:
                    raise _Fail(f"{unpacker.entries} entries, the index says {entries}")
            except (zlib.error, _Fail, ValueError, IndexError) as exc:
                raise _Fail(f"shard {i}: {exc}", retry=False) from None
        finally:
            unpacker.close_quietly()
        with self.lock:
            self.files += unpacker.files
            self.bytes += unpacker.bytes
            self.dir_paths.extend(unpacker.dir_paths)
            self.links[i] = unpacker.links
            self.fetched += clen
            self.watch.verified += 1
        return True


class _Piece:
    __slots__ = ("first", "end", "next", "taken")

    def __init__(self, first, end):
        self.first = first
        self.end = end
        self.next = first
        self.taken = False


def _split(cost, parts):
    """Consecutive runs of shards of about equal cost, largest first."""
    total = sum(cost)
    pieces = []
    start = 0
    acc = 0
    for i, c in enumerate(cost):
        acc += c
        remaining_parts = parts - len(pieces) - 1
        if remaining_parts > 0 and acc >= total * (len(pieces) + 1) / parts and i + 1 < len(cost):
            pieces.append(_Piece(start, i + 1))
            start = i + 1
    pieces.append(_Piece(start, len(cost)))
    return pieces


def default_workers():
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(2, min(8, cpus + 1))


def _as_fail(exc, root=b"/tmp"):
    if isinstance(exc, _Fail):
        return exc
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = os.path.dirname(os.fsdecode(root))
        return _Fail(f"no space left on the device of {where} while unpacking "
                     "(raise the function's ephemeral storage)", retry=False)
    return _Fail(f"{type(exc).__name__}: {exc}")


def _read_exact(resp, n, watch):
    data = resp.read(n)
    watch.received += len(data)
    if len(data) != n:
        raise _Fail(f"the stream ended after {len(data)} of the index member's first {n} bytes")
    return data


class _Start:
    """Hands the run to the worker threads once the index is known; they connect in the meantime."""

    def __init__(self, s3, watch):
        self.s3 = s3
        self.watch = watch
        self.ready = threading.Event()
        self.run = None

    def worker(self):
        conn = self.s3.connect(self.watch)
        try:
            conn.connect()
        except OSError:
            pass  # the first request on it reports the error
        self.ready.wait()
        if self.run is None:
            conn.close()
            return
        self.run.worker(conn)


def _tmp_name(base, sha256):
    return os.path.join(base, f".tmp-{sha256[:16]}-{os.getpid()}-{os.urandom(4).hex()}")


def _attempt(s3, expected_sha256, expected_size, expected_unpacked, base, final, workers, watch):
    """One try: returns the load's statistics or raises ``_Fail``; never leaves the temporary dir."""
    watch.arm()
    start = _Start(s3, watch)
    threads = [threading.Thread(target=start.worker, name=f"warm-web-slim-{n}", daemon=True)
               for n in range(workers - 1)]
    for t in threads:
        t.start()
    conn = s3.connect(watch)
    tmp = None
    try:
        try:
            # One open-ended GET: the index member first, then the first piece of shards, read on as
            # soon as the index says where the other workers' pieces are.
            resp = s3.get(conn, 0, expected_size - 1 if expected_size else "")
            head = _read_exact(resp, 16, watch)
            head += _read_exact(resp, int.from_bytes(head[14:16], "little") + 10, watch)
        except (OSError, http.client.HTTPException) as exc:
            raise _as_fail(exc) from None
        index, index_length = parse_index(head, expected_sha256, expected_size)
        unpacked = index["unpacked"]
        if expected_unpacked is not None and unpacked != expected_unpacked:
            raise _Fail(f"the index says {unpacked} bytes unpacked, WARM_WEB_SLIM_UNPACKED is "
                        f"{expected_unpacked}", retry=False)
        watch.shards = len(index["shards"])
        st = os.statvfs(base)
        free = st.f_bavail * st.f_frsize
        if free < unpacked:
            raise _Fail(f"no space: the code needs {unpacked / 1e6:.1f} MB unpacked, {free / 1e6:.1f} MB "
                        f"free in {base} (raise the function's ephemeral storage)", retry=False)
        tmp = _tmp_name(base, expected_sha256)
        os.mkdir(tmp, 0o700)  # private until it is complete
        root = os.fsencode(tmp)
        run = _Run(s3, index, index_length, root, workers, watch)
        run.requests = 1
        first = run.first_piece()
        start.run = run
        start.ready.set()
        run.worker(conn, first, resp)
        conn = None
        for t in threads:
            t.join()
        if run.failure is not None:
            raise run.failure
        # Every shard is verified: what follows is the same on every attempt.
        links = run.all_links()
        dirs = len(run.dir_paths)
        got = (run.files, dirs, len(links), run.bytes)
        want = (index["files"], index.get("dirs", dirs), index.get("symlinks", len(links)), unpacked)
        if got != want:
            raise _Fail("unpacked {} files, {} dirs, {} symlinks, {} bytes; the index says {}, {}, {}, {}"
                        .format(*got, *want), retry=False)
        if run.fix_mode:
            for path in run.dir_paths:
                os.chmod(path, 0o755)
        _make_links(root, links)
        marker = os.open(os.path.join(tmp, MARKER), _O_CREATE, 0o644)
        with os.fdopen(marker, "w") as f:
            json.dump({"format": FORMAT, "v": VERSION, "sha256": expected_sha256, "bucket": s3.bucket,
                       "key": s3.key, "files": run.files, "bytes": run.bytes}, f)
        os.chmod(tmp, 0o755)
        _publish(tmp, final, expected_sha256, base)
        tmp = None
        return {"bytes": run.fetched + index_length, "files": run.files, "unpacked": run.bytes,
                "requests": run.requests, "shards": len(index["shards"])}
    except BaseException as exc:
        if conn is not None:
            conn.close()
        start.ready.set()
        for t in threads:
            t.join()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, Exception) and watch.passed():
            # Whatever broke once the deadline passed (a cut read, a timeout) broke because of it.
            raise watch.error() from None
        if isinstance(exc, (OSError, http.client.HTTPException, zlib.error, ValueError, KeyError, TypeError)):
            raise _as_fail(exc, os.fsencode(tmp or base)) from None
        raise
    finally:
        watch.disarm()


class _Locked:
    """An exclusive flock on the directory ``base`` (released by the kernel if the process dies), held
    by every INIT of this sandbox while it looks at and changes what is at a final path."""

    def __init__(self, base):
        self.fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))

    def __enter__(self):
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the lock


def _publish(tmp, final, sha256, base):
    """Renames the complete ``tmp`` to ``final``. Under the lock a complete tree already there (another
    INIT finished first) is kept and ours deleted; anything else there is moved aside, then deleted."""
    aside = None
    with _Locked(base):
        if _complete(final, sha256):
            aside = tmp
        else:
            if os.path.lexists(final):
                aside = _tmp_name(base, sha256)
                try:
                    os.rename(final, aside)
                except OSError as exc:
                    raise _Fail(f"{final} exists, is incomplete and cannot be moved: {exc}",
                                retry=False) from None
            os.rename(tmp, final)
    if aside is not None:
        if os.path.islink(aside):
            os.unlink(aside)
        else:
            shutil.rmtree(aside, ignore_errors=True)


def _complete(path, sha256):
    """True when ``path`` is a directory (not a link) whose marker (a file, not a link) names this
    archive: ``sha256`` is the WARM_WEB_SLIM_SHA256 this INIT was given."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        fd = os.open(os.path.join(path, MARKER), _O_READ)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return False
            marker = json.loads(os.read(fd, 65536))
        finally:
            os.close(fd)
        return (isinstance(marker, dict) and marker.get("format") == FORMAT
                and marker.get("v") == VERSION and marker.get("sha256") == sha256)
    except (OSError, ValueError):
        return False


def _remove_stale(base):
    """Temporary directories left by an INIT that died (timeout, crash) in this sandbox."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if not name.startswith(".tmp-"):
            continue
        try:
            pid = int(name.split("-")[2])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid():
            try:
                os.kill(pid, 0)
                continue  # a live process is still writing it
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def _int_env(env, name):
    value = env.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise SlimLoadError(f"warm-web slim: {name}={value!r} is not an integer") from None


def deadline_ms(env, note=None):
    """The whole load's deadline in ms and where it comes from: WARM_WEB_SLIM_DEADLINE_MS, else the
    INIT budget. Lambda ends an on-demand INIT at 10 s (like async INIT's 9500 ms the load stops half a
    second before, so that its error, not a timeout, is what INIT reports) and runs it again inside the
    first invoke, with the function's timeout; a provisioned-concurrency or SnapStart INIT may take 130 s.
    ``note`` is the file a load that ran out of time leaves: the INIT after it gets the long budget.
    The third value says whether this is the on-demand budget, the one a load may run out of."""
    raw = env.get("WARM_WEB_SLIM_DEADLINE_MS")
    if raw in (None, ""):
        kind = env.get("AWS_LAMBDA_INITIALIZATION_TYPE")
        if kind in ("provisioned-concurrency", "snap-start"):
            return LONG_DEADLINE_MS, f"the budget of a {kind} INIT", False
        if note is not None and os.path.lexists(note):
            return LONG_DEADLINE_MS, "the budget of an INIT after one that ran out of time", False
        return DEFAULT_DEADLINE_MS, "the INIT budget; WARM_WEB_SLIM_DEADLINE_MS overrides it", True
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise SlimLoadError(f"warm-web slim: WARM_WEB_SLIM_DEADLINE_MS={raw!r} is not a positive number "
                            "of milliseconds")
    return value, "WARM_WEB_SLIM_DEADLINE_MS", False


def _leave_note(note):
    """Tells the next INIT in this sandbox that this load ran out of time (best effort)."""
    try:
        os.close(os.open(note, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    except OSError:
        pass


def materialise(env=None, workers=None, emit=True, started=None):
    """Makes the slim code archive available under ``$TMPDIR/warm-web/<sha256>``, puts that first on
    ``sys.path`` and returns it. Reuses a complete copy from earlier in this process or sandbox.
    ``started`` (a ``time.perf_counter()`` value, now by default) is when INIT began: the deadline counts
    from there."""
    started = time.perf_counter() if started is None else started
    env = os.environ if env is None else env
    bucket = env.get("WARM_WEB_SLIM_BUCKET")
    key = env.get("WARM_WEB_SLIM_KEY")
    sha256 = (env.get("WARM_WEB_SLIM_SHA256") or "").lower()
    if not bucket or not key or len(sha256) != 64:
        raise SlimLoadError("warm-web slim: WARM_WEB_SLIM_BUCKET, WARM_WEB_SLIM_KEY and a 64-hex-digit "
                            "WARM_WEB_SLIM_SHA256 must all be set")
    size = _int_env(env, "WARM_WEB_SLIM_SIZE")
    unpacked = _int_env(env, "WARM_WEB_SLIM_UNPACKED")
    base = os.path.join(env.get("TMPDIR") or "/tmp", "warm-web")
    final = os.path.join(base, sha256)
    note = os.path.join(base, OUT_OF_TIME + sha256)

    with _loaded_lock:
        path = _loaded.get(final)
        if path is None:
            ms, source, on_demand = deadline_ms(env, note)
            watch = _Watch(started, ms, source, size)
            try:
                path = _load(env, bucket, key, sha256, size, unpacked, base, final, workers, emit, watch)
            except SlimLoadError:
                # Only the on-demand budget is too short for a load that Lambda would let run longer.
                if watch.passed() and on_demand:
                    _leave_note(note)
                raise
            _loaded[final] = path
            try:
                os.unlink(note)
            except FileNotFoundError:
                pass
    if path not in sys.path:
        sys.path.insert(0, path)
        import importlib
        importlib.invalidate_caches()
    return path


def _load(env, bucket, key, sha256, size, unpacked, base, final, workers, emit, watch):
    if _complete(final, sha256):
        return final
    load_started = time.perf_counter()
    s3 = S3Object(bucket, key, env)
    try:
        os.makedirs(base, exist_ok=True)
    except OSError as exc:
        raise SlimLoadError(f"warm-web slim: cannot load {s3.where()}: cannot create {base}: {exc}") from None
    _remove_stale(base)
    workers = workers or default_workers()
    causes = []
    for attempt in (1, 2):
        try:
            stats = _attempt(s3, sha256, size, unpacked, base, final, workers, watch)
            break
        except _Fail as exc:
            causes.append(str(exc))
            if not exc.retry or attempt == 2:
                tried = "1 attempt" if attempt == 1 else "2 attempts"
                raise SlimLoadError(
                    f"warm-web slim: cannot load {s3.where()} (WARM_WEB_SLIM_SHA256={sha256}) "
                    f"after {tried}: {'; then: '.join(causes)}") from None
    elapsed = round((time.perf_counter() - load_started) * 1000, 1)
    if emit:
        print(_metric_line(env, elapsed, stats, attempt, key), flush=True)
    return final


def _metric_line(env, load_ms, stats, attempts, key):
    return json.dumps({
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [{
                "Namespace": "WarmWeb",
                "Dimensions": [["FunctionName"]],
                "Metrics": [
                    {"Name": "SlimLoadMs", "Unit": "Milliseconds"},
                    {"Name": "SlimBytes", "Unit": "Bytes"},
                ],
            }],
        },
        "FunctionName": env.get("AWS_LAMBDA_FUNCTION_NAME", ""),
        "SlimLoadMs": load_ms,
        "SlimBytes": stats["bytes"],
        "SlimKey": key,
        "SlimFiles": stats["files"],
        "SlimUnpackedBytes": stats["unpacked"],
        "SlimRequests": stats["requests"],
        "SlimAttempts": attempts,
        "Runtime": "python",
    }, separators=(",", ":"))
