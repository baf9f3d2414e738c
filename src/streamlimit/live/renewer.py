"""The batched renewals of one worker's live channels.

Every open channel's lease is renewed once per ``interval_s``, by a round robin over the
channels spread across the interval: ``ceil(n / BATCH)`` ticks per interval, each renewing the
next ``n / ticks`` leases in one store call (a few per Cluster slot, sent together). So a
round of n channels costs about n / 100 store calls, at an even pace, with no burst when many
players opened their channels at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from collections.abc import Callable, Sequence

from streamlimit.errors import StoreUnavailable
from streamlimit.live.channel import Key
from streamlimit.models import Renewal
from streamlimit.store.base import Store

log = logging.getLogger("streamlimit.live")

BATCH = 100  # leases per tick (and per lua/renew.lua call): round cost ~ channels / 100 calls
OnRenewed = Callable[[Sequence[Key], Sequence[Renewal]], None]
OnFailed = Callable[[Sequence[Key], StoreUnavailable], None]


class Renewer:
    def __init__(
        self, store: Store, ttl_ms: int, interval_s: float, on_renewed: OnRenewed, on_failed: OnFailed
    ) -> None:
        self._store, self._ttl_ms, self._interval_s = store, ttl_ms, interval_s
        self._on_renewed, self._on_failed = on_renewed, on_failed
        self._ring: dict[Key, None] = {}  # insertion order: the next to renew first
        self._wake = asyncio.Event()
        self._catch_up = False
        self._task: asyncio.Task[None] | None = None
        self.rounds = self.calls = 0  # ticks done and store calls made (for the benchmarks)

    def add(self, key: Key) -> None:
        """Renewed from the next round on (a channel opens with a heartbeat of its own)."""
        if key not in self._ring:
            self._ring[key] = None
            self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="live renewals")

    def discard(self, key: Key) -> None:
        self._ring.pop(key, None)

    def catch_up(self) -> None:
        """Renew every lease at once (kicks may have been missed: a renewal finds their end)."""
        self._catch_up = True
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()  # the last tick
        while True:
            n = len(self._ring)
            if not self._catch_up:
                self._wake.clear()
                if n == 0:  # the pace starts with the first channel (just renewed by its opening)
                    await self._wake.wait()
                    last = loop.time()
                    continue
                due = last + self._interval_s / math.ceil(n / BATCH)
                if loop.time() < due:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout_at(due):
                            await self._wake.wait()
                    continue  # due now, or woken: look again (more channels tick sooner)
            last = loop.time()
            take = n if self._catch_up else math.ceil(n / math.ceil(n / BATCH))
            self._catch_up = False
            keys = list(itertools.islice(self._ring, take))
            for key in keys:  # to the back of the ring
                del self._ring[key]
                self._ring[key] = None
            if keys:
                await self._renew(keys)

    async def _renew(self, keys: list[Key]) -> None:
        self.rounds += 1
        self.calls += math.ceil(len(keys) / BATCH)
        try:
            renewed = await self._store.renew(keys, self._ttl_ms)
        except StoreUnavailable as exc:
            self._on_failed(keys, exc)
            return
        except Exception:  # a bug must not stop every renewal of the worker
            log.exception("live renewal of %d leases failed", len(keys))
            return
        self._on_renewed(keys, renewed)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
