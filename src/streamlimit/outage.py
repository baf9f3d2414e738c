"""The store is out: one warning per interval, whoever notices it (start-up, requests), with
the number of times it was noticed in between."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from streamlimit.errors import StoreUnavailable

log = logging.getLogger("streamlimit.store")


class OutageLog:
    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self._suppressed = 0

    def warn(self, what: str, exc: StoreUnavailable) -> None:
        """``what``: what this instance does about it, e.g. ``answering start degraded``."""
        now = self._clock()
        if self._last is not None and now - self._last < self._interval_s:
            self._suppressed += 1
            return
        more = f"; {self._suppressed} more since last" if self._suppressed else ""
        log.warning("store unavailable (%s%s): %s", what, more, exc)
        self._last, self._suppressed = now, 0
