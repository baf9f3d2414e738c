"""Server-Sent Events frames (the WHATWG HTML "server-sent events" format): ``event:`` and one
``data:`` line of JSON, a comment line, and ``retry:`` (how long EventSource waits to reconnect)."""

from __future__ import annotations

from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode  # JSON never holds a raw newline: one data line


def event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def retry(ms: int) -> bytes:
    return b"retry: %d\n\n" % ms


KEEPALIVE = b": keepalive\n\n"  # a comment: EventSource ignores it, proxies see traffic
