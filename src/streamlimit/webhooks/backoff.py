"""When a failed webhook is tried again, and when it is given up.

A failed attempt leaves its entry pending in the queue; any instance takes it again (XCLAIM)
once it has been idle ``retry_base_s * 2**(attempts - 1)``, at most ``retry_max_s``, each wait
up to a quarter longer by a jitter drawn from the entry's id and attempt number: the same on
every instance (so no instance sees an entry due sooner than another), different between
entries (so a burst that failed together is not retried together). Every wait is longer than
an attempt may take (settings.py checks ``retry_base_s > timeout_s``): an attempt still running
is never taken by another instance.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

_JITTER = 0.25


@dataclass(frozen=True, slots=True)
class Backoff:
    base_ms: int
    max_ms: int
    max_age_ms: int

    def wait_ms(self, entry_id: str, attempts: int) -> int:
        """How long an entry tried ``attempts`` times stays idle before the next attempt."""
        plain = self.base_ms * 2 ** min(max(attempts, 1) - 1, 40)
        spread = zlib.crc32(f"{entry_id}/{attempts}".encode()) / 0xFFFFFFFF * _JITTER
        return min(self.max_ms, int(plain * (1 + spread)))

    def expired(self, entry_ms: int, now_ms: int) -> bool:
        """Queued ``max_age`` ago or more: given up."""
        return now_ms - entry_ms >= self.max_age_ms


def entry_ms(entry_id: str) -> int:
    """The store's clock when the entry was queued: the first part of ``<ms>-<seq>``."""
    return int(entry_id.partition("-")[0])
