"""The delivery loop each process runs (each uvicorn worker: one consumer of the group).

Every ``poll_interval_s`` it reads new entries (XREADGROUP ``>``) and takes pending entries
whose wait is over (XPENDING, then XCLAIM: backoff.py), never more than ``concurrency`` attempts
in flight, so an entry it holds is always being tried. An event goes to every URL at once; when
all answered 2xx it is deleted and acknowledged, else it stays pending, and this process
remembers which URLs have it, so its retries go to the others only. Another process that takes
it (this one crashed or stopped) sends it to every URL again: a duplicate, with the same
``webhook-id``. Entries queued ``max_age`` ago are given up: deleted, counted, logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from streamlimit.errors import StoreUnavailable
from streamlimit.store.resp import ReplyError
from streamlimit.webhooks.backoff import Backoff, entry_ms
from streamlimit.webhooks.payload import Undeliverable, message
from streamlimit.webhooks.queue import Entry, Queue
from streamlimit.webhooks.sender import Sender
from streamlimit.webhooks.targets import shown

if TYPE_CHECKING:
    from streamlimit.metrics import Metrics

log = logging.getLogger("streamlimit.webhooks")
PAGE = 100  # pending entries looked at per stream and poll
_PRUNE_EVERY_MS = 60_000
Key = tuple[str, str]  # (stream, entry id)


class Throttled:
    """One log line per ``interval_s`` for a kind of trouble, with how many were not logged."""

    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s, self._clock = interval_s, clock
        self._last: float | None = None
        self._quiet = 0

    def warn(self, msg: str, *args: object) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._interval_s:
            self._quiet += 1
            return
        more = f" ({self._quiet} more since the last such line)" if self._quiet else ""
        log.warning(msg + more, *args)
        self._last, self._quiet = now, 0


class Delivery:
    def __init__(
        self,
        queue: Queue,
        urls: tuple[str, ...],
        sender: Sender,
        backoff: Backoff,
        *,
        consumer: str,
        concurrency: int = 16,
        poll_interval_s: float = 1.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._queue, self._urls, self._sender, self._backoff = queue, urls, sender, backoff
        self.consumer = consumer
        self._concurrency = concurrency
        self._poll_interval_s = poll_interval_s
        self._metrics = metrics
        self._inflight: dict[Key, asyncio.Task[None]] = {}
        self._delivered: dict[Key, set[str]] = {}  # URLs that answered 2xx, of entries still pending
        self._cursor: dict[str, str | None] = {}  # per stream: where the next pending page starts
        self._pruned_ms = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures, self._given_up, self._store_trouble = Throttled(), Throttled(), Throttled()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, grace_s: float) -> None:
        """Stop taking entries; attempts in flight get ``grace_s`` to finish, then are cancelled
        (their entries stay pending, for any instance to take)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        running = list(self._inflight.values())
        if running:
            _, late = await asyncio.wait(running, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._sender.aclose()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            full = False
            try:
                full = await self.poll()
            except (StoreUnavailable, ReplyError) as exc:
                self._store_trouble.warn("webhooks: the store did not answer the delivery loop: %s", exc)
            except Exception:  # a bug must not end deliveries for the life of the process
                log.exception("webhooks: the delivery loop failed; it goes on")
            if not full:
                await asyncio.sleep(self._poll_interval_s)
                continue
            with contextlib.suppress(TimeoutError):  # an attempt ending frees a place at once
                async with asyncio.timeout(self._poll_interval_s):
                    await self._wake.wait()

    async def poll(self) -> bool:
        """Start attempts for what is new or due; True when every place is taken."""
        now = await self._queue.now_ms()
        for stream in await self._queue.streams():
            free = self._concurrency - len(self._inflight)
            if free <= 0:
                break
            for entry in await self._queue.read(stream, self.consumer, free):
                self._spawn(entry, now)
            await self._retry_due(stream, now)
        await self._gauges(now)
        self._prune(now)
        return len(self._inflight) >= self._concurrency

    async def _retry_due(self, stream: str, now: int) -> None:
        after = self._cursor.get(stream)
        page = await self._queue.pending(stream, self._backoff.base_ms, after, PAGE)
        self._cursor[stream] = page[-1].id if len(page) == PAGE else None
        for p in page:
            if len(self._inflight) >= self._concurrency:
                self._cursor[stream] = after  # look at the rest again on the next poll
                return
            if (stream, p.id) in self._inflight:
                continue
            expired = self._backoff.expired(entry_ms(p.id), now)
            wait = self._backoff.base_ms if expired else self._backoff.wait_ms(p.id, p.deliveries)
            if p.idle_ms >= wait and (entry := await self._queue.claim(stream, self.consumer, wait, p.id)):
                self._spawn(entry, now)

    def _spawn(self, entry: Entry, now: int) -> None:
        key = (entry.stream, entry.id)
        if self._backoff.expired(entry_ms(entry.id), now):
            task = asyncio.get_running_loop().create_task(self._give_up(entry, "older than the maximum age"))
        else:
            task = asyncio.get_running_loop().create_task(self._attempt(entry))
        self._inflight[key] = task
        task.add_done_callback(lambda t: self._ended(key, t))

    def _ended(self, key: Key, task: asyncio.Task[None]) -> None:
        self._inflight.pop(key, None)
        self._wake.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            # the store failed to take the acknowledgement: the entry stays pending, tried again
            self._store_trouble.warn("webhooks: could not mark %s delivered: %s", key[1], exc)

    async def _attempt(self, entry: Entry) -> None:
        try:
            msg = message(entry.event_id, entry.user_id, entry.event)
        except Undeliverable as exc:
            await self._give_up(entry, str(exc))
            return
        key = (entry.stream, entry.id)
        have = self._delivered.setdefault(key, set())
        todo = [url for url in self._urls if url not in have]
        results = await asyncio.gather(*(self._sender.send(url, msg) for url in todo))
        for url, failed in zip(todo, results, strict=True):
            if failed is None:
                have.add(url)
                if self._metrics is not None:
                    self._metrics.webhook_sent.inc()
                continue
            reason, detail = failed
            if self._metrics is not None:
                self._metrics.webhook_failed.labels(reason).inc()
            self._failures.warn(
                "webhooks: %s %s to %s failed (%s %s); it will be tried again",
                msg.type, msg.id, shown(url), reason, detail,
            )  # fmt: skip
        if len(have) == len(self._urls):
            await self._queue.done(entry.stream, entry.id)
            self._delivered.pop(key, None)

    async def _give_up(self, entry: Entry, why: str) -> None:
        await self._queue.done(entry.stream, entry.id)
        self._delivered.pop((entry.stream, entry.id), None)
        if self._metrics is not None:
            self._metrics.webhook_given_up.inc()
        self._given_up.warn("webhooks: gave up %s of user %s: %s", entry.event_id, entry.user_id, why)

    async def _gauges(self, now: int) -> None:
        depth = await self._queue.depth()  # also lets a Cluster queue forget its emptied slots
        if self._metrics is None:
            return
        self._metrics.webhook_queue_depth.set(depth.entries)
        age_s = 0.0 if depth.oldest_ms is None else max(0, now - depth.oldest_ms) / 1000
        self._metrics.webhook_oldest_age.set(age_s)

    def _prune(self, now: int) -> None:
        """Forget what was delivered of entries given up or delivered by other instances."""
        if now - self._pruned_ms < _PRUNE_EVERY_MS:
            return
        self._pruned_ms = now
        for key in [k for k in self._delivered if k not in self._inflight]:
            if self._backoff.expired(entry_ms(key[1]), now):
                del self._delivered[key]
