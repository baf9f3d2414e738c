"""The queue of memory:// (store/hooks.py's MemoryHookQueue): one stream, in this process."""

from __future__ import annotations

from collections.abc import Sequence

from streamlimit.store.hooks import HookEntry, MemoryHookQueue
from streamlimit.webhooks.queue import Depth, Entry, Pending

STREAM = "memory"


def _entry(e: HookEntry) -> Entry:
    return Entry(STREAM, e.id, e.user_id, e.event, f"evt_{e.id}")


class MemoryQueue:
    def __init__(self, hooks: MemoryHookQueue) -> None:
        self._hooks = hooks

    async def now_ms(self) -> int:
        return self._hooks.clock()

    async def streams(self) -> Sequence[str]:
        return (STREAM,)

    async def read(self, stream: str, consumer: str, count: int) -> list[Entry]:
        return [_entry(e) for e in self._hooks.read(consumer, count)]

    async def pending(self, stream: str, min_idle_ms: int, after: str | None, count: int) -> list[Pending]:
        return [Pending(*p) for p in self._hooks.pending(min_idle_ms, after, count)]

    async def claim(self, stream: str, consumer: str, min_idle_ms: int, entry_id: str) -> Entry | None:
        e = self._hooks.claim(consumer, min_idle_ms, entry_id)
        return None if e is None else _entry(e)

    async def done(self, stream: str, entry_id: str) -> None:
        self._hooks.delete(entry_id)

    async def depth(self) -> Depth:
        entries = self._hooks.entries
        return Depth(len(entries), int(entries[0].id.partition("-")[0]) if entries else None)
