"""Times as the API and the webhooks write them: RFC 3339, UTC, milliseconds."""

from __future__ import annotations

import time
from functools import lru_cache


@lru_cache(maxsize=256)  # the seconds of now and of now + a lease: a few distinct values at a time
def _second(s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))


def rfc3339(ms: int) -> str:
    return f"{_second(ms // 1000)}.{ms % 1000:03d}Z"
