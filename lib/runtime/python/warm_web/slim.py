"""Slim code: fetch the app's code archive from S3 and unpack it into /tmp during INIT.

The construct packs code that is too big for Lambda's 250 MB limit into one archive
(``lib/slim/pack.ts``, format in ``docs/SLIM_FORMAT.md``) under a content-hash key and sets:

``WARM_WEB_SLIM_BUCKET``, ``WARM_WEB_SLIM_KEY``, ``WARM_WEB_SLIM_SIZE`` (archive bytes),
``WARM_WEB_SLIM_SHA256`` (SHA-256 of the archive's index member, which holds every shard's SHA-256),
``WARM_WEB_SLIM_UNPACKED`` (bytes of file content once unpacked).

``materialise(os.environ)`` runs before the app is imported. It reads the index with one small ranged
GET, then streams the shards over a few parallel ranged GETs; each worker thread hashes, inflates and
writes its shards as the bytes arrive (zlib, hashlib and file writes release the GIL, so the workers use
every core). Everything lands in a fresh temporary directory that is renamed to
``$TMPDIR/warm-web/<sha256>`` only once every shard has been verified and a completion marker written, so
that path only ever holds a complete tree. A failure is retried once; then ``SlimLoadError`` names the
bucket, key and cause, and the temporary directory is gone.

Standard library only: boto3 would add ~0.2 s to INIT just to be imported.
"""
import datetime
import errno
import hashlib
import hmac
import http.client
import json
import os
import shutil
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

    def connect(self):
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=TIMEOUT_S)
        return http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S)

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

_O_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_ZERO_BLOCK = bytes(512)


def _safe_name(name):
    if not name or name.startswith(b"/") or b"\\" in name:
        raise _Fail(f"unsafe path in archive: {name!r}", retry=False)
    if b".." in name and b".." in name.split(b"/"):
        raise _Fail(f"unsafe path in archive: {name!r}", retry=False)


def _safe_link(name, target):
    if not target or target.startswith(b"/"):
        raise _Fail(f"unsafe symlink in archive: {name!r} -> {target!r}", retry=False)
    depth = name.count(b"/")
    for part in target.split(b"/"):
        if part == b"..":
            depth -= 1
            if depth < 0:
                raise _Fail(f"symlink leaves the tree: {name!r} -> {target!r}", retry=False)
        elif part not in (b"", b"."):
            depth += 1


class _Unpacker:
    """A streaming tar reader that writes what it reads under ``root`` (bytes path)."""

    def __init__(self, root, mtime, fix_mode):
        self.root = root + b"/"
        self.times = (mtime, mtime)
        self.fix_mode = fix_mode
        self.pending = b""
        self.fd = -1
        self.path = None
        self.remaining = 0
        self.skip = 0
        self.pax_body = None
        self.pax_left = 0
        self.pax = None
        self.ended = False
        self.entries = 0
        self.files = 0
        self.bytes = 0
        self.dirs = []

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
            self._header(header)

    def finish(self):
        if self.remaining or self.pending or self.skip or self.pax_left or self.pax is not None:
            raise _Fail("shard ends inside an entry")

    def close_quietly(self):
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1

    # -- entries

    def _header(self, h):
        if self.ended or h == _ZERO_BLOCK:
            if h != _ZERO_BLOCK:
                raise _Fail("data after the end-of-archive blocks")
            self.ended = True
            return
        if h[257:263] != b"ustar\x00":
            raise _Fail("corrupt tar header (no ustar magic)")
        size = int(h[124:135] or b"0", 8)
        kind = h[156]
        if kind == 0x78:  # 'x': pax extended header for the next entry
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
            size = int(pax.get(b"size", size))
        self.entries += 1
        if kind == 0x35:  # '5' directory
            name = name.rstrip(b"/")
            _safe_name(name)
            path = self.root + name
            try:
                os.mkdir(path, 0o755)
            except FileExistsError:
                pass
            except FileNotFoundError:
                os.makedirs(path, 0o755, exist_ok=True)
            self.dirs.append(path)
        elif kind == 0x30 or kind == 0:  # '0' regular file
            _safe_name(name)
            mode = int(h[100:107] or b"0", 8) & 0o777
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
            self.path = path
            self.files += 1
            self.bytes += size
            self.skip = (-size) % 512
            self.remaining = size
            if not size:
                self._close()
        elif kind == 0x32:  # '2' symlink
            _safe_name(name)
            target = h[157:257].split(b"\x00", 1)[0]
            if pax:
                target = pax.get(b"linkpath", target)
            _safe_link(name, target)
            path = self.root + name
            try:
                os.symlink(target, path)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
                os.symlink(target, path)
        else:
            raise _Fail(f"unsupported tar entry type {chr(kind)!r} for {name!r}", retry=False)

    def _pax_done(self):
        records = {}
        body = self.pax_body
        pos = 0
        while pos < len(body):
            space = body.index(b" ", pos)
            length = int(body[pos:space])
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


# --------------------------------------------------------------------------------------------------
# One attempt

class _Run:
    """Shared state of one attempt: the work list, the first failure, the totals."""

    def __init__(self, s3, index, index_length, root, workers):
        self.s3 = s3
        self.index = index
        self.root = root
        self.lock = threading.Lock()
        self.failure = None
        self.files = 0
        self.bytes = 0
        self.dirs = []
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

    def first_piece(self):
        """The piece that starts at shard 0: the first GET's response runs on into it."""
        piece = self.pieces[0]
        piece.taken = True
        return piece

    def fail(self, exc):
        with self.lock:
            if self.failure is None:
                self.failure = exc

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
                conn = self.s3.connect()
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
        unpacker = _Unpacker(self.root, mtime, self.fix_mode)
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
                if broken is not None:
                    continue
                try:
                    data = inflate.decompress(chunk, INFLATE_MAX)
                    while True:
                        out += len(data)
                        if out > ulen:
                            raise _Fail(f"shard {i} inflates past its {ulen} bytes")
                        unpacker.feed(data)
                        if not inflate.unconsumed_tail:
                            break
                        data = inflate.decompress(inflate.unconsumed_tail, INFLATE_MAX)
                except (zlib.error, _Fail, ValueError, IndexError) as exc:
                    # Read the rest: a hash mismatch is the better explanation of a corrupt stream.
                    broken = exc
                    unpacker.close_quietly()
                with self.lock:
                    if self.failure is not None:
                        unpacker.close_quietly()
                        return False
            got = digest.hexdigest()
            if got != sha256:
                raise _Fail(f"shard {i}: SHA-256 mismatch (expected {sha256}, got {got}): "
                            "the archive was corrupted in transit or in S3")
            if broken is not None:
                raise broken if isinstance(broken, _Fail) else _Fail(f"shard {i}: {broken}")
            if not inflate.eof or inflate.unused_data or out != ulen:
                raise _Fail(f"shard {i}: inflated {out} of {ulen} bytes")
            unpacker.finish()
            if unpacker.entries != entries:
                raise _Fail(f"shard {i}: {unpacker.entries} entries, the index says {entries}")
        finally:
            unpacker.close_quietly()
        with self.lock:
            self.files += unpacker.files
            self.bytes += unpacker.bytes
            self.dirs.extend(unpacker.dirs)
            self.fetched += clen
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


def _read_exact(resp, n):
    data = resp.read(n)
    if len(data) != n:
        raise _Fail(f"the stream ended after {len(data)} of the index member's first {n} bytes")
    return data


class _Start:
    """Hands the run to the worker threads once the index is known; they connect in the meantime."""

    def __init__(self, s3):
        self.s3 = s3
        self.ready = threading.Event()
        self.run = None

    def worker(self):
        conn = self.s3.connect()
        try:
            conn.connect()
        except OSError:
            pass  # the first request on it reports the error
        self.ready.wait()
        if self.run is None:
            conn.close()
            return
        self.run.worker(conn)


def _attempt(s3, expected_sha256, expected_size, expected_unpacked, base, final, workers):
    """One try: returns the load's statistics or raises ``_Fail``; never leaves the temporary dir."""
    start = _Start(s3)
    threads = [threading.Thread(target=start.worker, name=f"warm-web-slim-{n}", daemon=True)
               for n in range(workers - 1)]
    for t in threads:
        t.start()
    conn = s3.connect()
    tmp = None
    try:
        try:
            # One open-ended GET: the index member first, then the first piece of shards, read on as
            # soon as the index says where the other workers' pieces are.
            resp = s3.get(conn, 0, expected_size - 1 if expected_size else "")
            head = _read_exact(resp, 16)
            head += _read_exact(resp, int.from_bytes(head[14:16], "little") + 10)
        except (OSError, http.client.HTTPException) as exc:
            raise _as_fail(exc) from None
        index, index_length = parse_index(head, expected_sha256, expected_size)
        unpacked = index["unpacked"]
        if expected_unpacked is not None and unpacked != expected_unpacked:
            raise _Fail(f"the index says {unpacked} bytes unpacked, WARM_WEB_SLIM_UNPACKED is "
                        f"{expected_unpacked}", retry=False)
        st = os.statvfs(base)
        free = st.f_bavail * st.f_frsize
        if free < unpacked:
            raise _Fail(f"no space: the code needs {unpacked / 1e6:.1f} MB unpacked, {free / 1e6:.1f} MB "
                        f"free in {base} (raise the function's ephemeral storage)", retry=False)
        tmp = os.path.join(base, f".tmp-{expected_sha256[:16]}-{os.getpid()}-{os.urandom(4).hex()}")
        os.mkdir(tmp, 0o755)
        run = _Run(s3, index, index_length, os.fsencode(tmp), workers)
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
        if run.files != index["files"] or run.bytes != unpacked:
            raise _Fail(f"unpacked {run.files} files / {run.bytes} bytes, the index says "
                        f"{index['files']} / {unpacked}")
        if run.fix_mode:
            for path in run.dirs:
                os.chmod(path, 0o755)
        with open(os.path.join(tmp, MARKER), "w") as marker:
            json.dump({"sha256": expected_sha256, "bucket": s3.bucket, "key": s3.key,
                       "files": run.files, "bytes": run.bytes}, marker)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not _complete(final, expected_sha256):
                raise
            # Another process finished first: theirs is as good as ours.
            shutil.rmtree(tmp, ignore_errors=True)
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
        if isinstance(exc, (OSError, http.client.HTTPException, zlib.error, ValueError, KeyError, TypeError)):
            raise _as_fail(exc, os.fsencode(tmp or base)) from None
        raise


def _complete(path, sha256):
    try:
        with open(os.path.join(path, MARKER)) as f:
            return json.load(f).get("sha256") == sha256
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


def materialise(env=None, workers=None, emit=True):
    """Makes the slim code archive available under ``$TMPDIR/warm-web/<sha256>``, puts that first on
    ``sys.path`` and returns it. Reuses a complete copy from earlier in this process or sandbox."""
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

    with _loaded_lock:
        path = _loaded.get(final)
        if path is None:
            path = _load(env, bucket, key, sha256, size, unpacked, base, final, workers, emit)
            _loaded[final] = path
    if path not in sys.path:
        sys.path.insert(0, path)
        import importlib
        importlib.invalidate_caches()
    return path


def _load(env, bucket, key, sha256, size, unpacked, base, final, workers, emit):
    if _complete(final, sha256):
        return final
    started = time.perf_counter()
    s3 = S3Object(bucket, key, env)
    try:
        os.makedirs(base, exist_ok=True)
    except OSError as exc:
        raise SlimLoadError(f"warm-web slim: cannot load {s3.where()}: cannot create {base}: {exc}") from None
    _remove_stale(base)
    if os.path.lexists(final):
        # Not ours (ours only ever appear complete): move it out of the way, then delete it.
        aside = os.path.join(base, f".tmp-{sha256[:16]}-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            os.rename(final, aside)
            shutil.rmtree(aside, ignore_errors=True)
        except OSError as exc:
            raise SlimLoadError(f"warm-web slim: cannot load {s3.where()}: {final} exists, is incomplete "
                                f"and cannot be moved: {exc}") from None
    workers = workers or default_workers()
    causes = []
    for attempt in (1, 2):
        try:
            stats = _attempt(s3, sha256, size, unpacked, base, final, workers)
            break
        except _Fail as exc:
            causes.append(str(exc))
            if not exc.retry or attempt == 2:
                tried = "1 attempt" if attempt == 1 else "2 attempts"
                raise SlimLoadError(
                    f"warm-web slim: cannot load {s3.where()} (WARM_WEB_SLIM_SHA256={sha256}) "
                    f"after {tried}: {'; then: '.join(causes)}") from None
    elapsed = round((time.perf_counter() - started) * 1000, 1)
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
