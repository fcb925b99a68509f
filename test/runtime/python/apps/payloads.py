"""Bytes and text that every test app serves the same way."""
import json

# PNG signature, then every byte value: 0x00 and 0xff make it invalid UTF-8 on purpose.
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
TEXT = "héllo wörld ✓ 日本語 — ünïcödé\n"
COOKIES = (
    ("session", "abc123", {"httponly": True, "path": "/"}),
    ("theme", "dark", {"max_age": 3600}),
    ("lang", "fr", {"path": "/echo"}),
)


def as_json(data):
    """Deterministic JSON bytes, so bodies can be compared byte for byte."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
