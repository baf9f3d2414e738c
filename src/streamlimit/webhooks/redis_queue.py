"""The queue on Redis: one Stream (``streamlimit:hooks``), or on a Cluster one per slot
(``streamlimit:{h:N}:hooks``, in the slot of the users whose events it holds), read with one
consumer group by every instance.

Finding a Cluster's slot queues that hold entries: a store call of this process that may queue
an event names its user in ``hints`` (RedisStore keeps it), so the slots of this process's own
events are looked at (one XLEN each) on the next poll; and every ``scan_interval_s`` the XLEN of
all 16384 slot queues, pipelined (each to its primary), finds what other instances left behind
(crashed, or stopped with entries pending). A SCAN for the queues' keys would walk every user's
keys instead: millions, against 16384 O(1) calls (about 0.4 s of one core per scan, measured on a
3-primary cluster on one machine: under 1% of a core at the default interval, 60 s). A slot whose
queue was found empty (``depth``) is looked at again only when hinted or scanned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from redis.crc import key_slot

from streamlimit.store.cluster import SLOTS
from streamlimit.store.keys import HOOKS, hooks_key, slot_hooks_key
from streamlimit.store.redis import Client
from streamlimit.store.resp import ReplyError
from streamlimit.webhooks.queue import GROUP, Depth, Entry, Pending

_BATCH = 512  # XLENs in flight at once during a scan: other calls on the connection wait less
GONE_AFTER_MS = 86_400_000  # a consumer that has not read for this long is a process that ended


class RedisQueue:
    def __init__(
        self,
        client: Client,
        *,
        per_slot: bool = False,
        hints: set[str] | None = None,
        scan_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        gone_after_ms: int = GONE_AFTER_MS,
    ) -> None:
        self._client = client
        self._per_slot = per_slot
        self._hints = hints if hints is not None else set()
        self._scan_interval_s = scan_interval_s
        self._clock = clock
        self._gone_after_ms = gone_after_ms
        self._next_scan = clock()
        # the streams looked at on each poll: the one, or the slots' seen to hold entries
        self._active: set[str] = set() if per_slot else {HOOKS}

    async def now_ms(self) -> int:
        seconds, micros = await self._client.execute("TIME")
        return int(seconds) * 1000 + int(micros) // 1000

    async def streams(self) -> Sequence[str]:
        scan = self._clock() >= self._next_scan
        if scan:
            self._next_scan = self._clock() + self._scan_interval_s
            for stream in sorted(self._active):
                await self._forget_gone_consumers(stream)
        if not self._per_slot:
            return (HOOKS,)
        candidates: Iterable[str]
        if scan:
            candidates = [slot_hooks_key(slot) for slot in range(SLOTS)]
        else:
            candidates = {hooks_key(user, True) for user in self._hints} - self._active
        self._hints.clear()
        lengths = await self._lengths(list(candidates))
        self._active |= {key for key, n in lengths.items() if n}
        return sorted(self._active)

    async def _lengths(self, keys: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in range(0, len(keys), _BATCH):
            part = keys[i : i + _BATCH]
            lengths = await asyncio.gather(*(self._client.execute("XLEN", k) for k in part))
            out.update(zip(part, (int(n) for n in lengths), strict=True))
        return out

    async def _forget_gone_consumers(self, stream: str) -> None:
        """Every process start is a new consumer of the group: drop those that hold nothing and
        have not read for a day (a live one reads every poll), so the group does not grow with
        every restart. One that held entries keeps them until another consumer claims them."""
        try:
            consumers = await self._client.execute("XINFO", "CONSUMERS", stream, GROUP)
        except ReplyError as exc:
            if str(exc).startswith("NOGROUP"):
                return
            raise
        for fields in consumers:
            info = dict(zip(fields[::2], fields[1::2], strict=True))
            if int(info["pending"]) == 0 and int(info["idle"]) >= self._gone_after_ms:
                await self._client.execute("XGROUP", "DELCONSUMER", stream, GROUP, info["name"])

    def _entry(self, stream: str, entry_id: str, fields: list[str]) -> Entry:
        values = dict(zip(fields[::2], fields[1::2], strict=True))
        event_id = f"evt_{key_slot(stream.encode())}_{entry_id}" if self._per_slot else f"evt_{entry_id}"
        return Entry(stream, entry_id, values.get("u", ""), values.get("e", ""), event_id)

    async def read(self, stream: str, consumer: str, count: int) -> list[Entry]:
        command = ("XREADGROUP", "GROUP", GROUP, consumer, "COUNT", count, "STREAMS", stream, ">")
        try:
            reply = await self._client.execute(*command)
        except ReplyError as exc:
            if not str(exc).startswith("NOGROUP"):
                raise
            # a new store, or one that lost its data: the group reads from the first entry on
            await self._create_group(stream)
            reply = await self._client.execute(*command)
        if not reply:
            return []
        return [self._entry(stream, i, fields) for _, items in reply for i, fields in items if fields]

    async def _create_group(self, stream: str) -> None:
        try:
            await self._client.execute("XGROUP", "CREATE", stream, GROUP, "0", "MKSTREAM")
        except ReplyError as exc:
            if not str(exc).startswith("BUSYGROUP"):  # another instance made it first
                raise

    async def pending(self, stream: str, min_idle_ms: int, after: str | None, count: int) -> list[Pending]:
        start = "-" if after is None else f"({after}"
        try:
            reply = await self._client.execute(
                "XPENDING", stream, GROUP, "IDLE", min_idle_ms, start, "+", count
            )
        except ReplyError as exc:
            if str(exc).startswith("NOGROUP"):
                return []
            raise
        return [Pending(str(i), int(idle), int(n)) for i, _consumer, idle, n in reply]

    async def claim(self, stream: str, consumer: str, min_idle_ms: int, entry_id: str) -> Entry | None:
        reply: list[Any] = await self._client.execute(
            "XCLAIM", stream, GROUP, consumer, min_idle_ms, entry_id
        )
        for item in reply:  # an entry deleted meanwhile (delivered, trimmed) is not, or nil
            if item and item[1]:
                return self._entry(stream, item[0], item[1])
        return None

    async def done(self, stream: str, entry_id: str) -> None:
        # deleted first: lost between the two, the entry is left pending with nothing behind it,
        # which the next claim drops; acknowledged first, it would stay in the stream unread
        await self._client.execute("XDEL", stream, entry_id)
        await self._client.execute("XACK", stream, GROUP, entry_id)

    async def depth(self) -> Depth:
        streams = sorted(self._active)
        lengths = await asyncio.gather(*(self._client.execute("XLEN", s) for s in streams))
        held = [s for s, n in zip(streams, lengths, strict=True) if int(n)]
        first = ("-", "+", "COUNT", 1)
        firsts = await asyncio.gather(*(self._client.execute("XRANGE", k, *first) for k in held))
        if self._per_slot:
            self._active -= set(streams) - set(held)
        oldest = [int(f[0][0].partition("-")[0]) for f in firsts if f]
        return Depth(sum(int(n) for n in lengths), min(oldest) if oldest else None)
