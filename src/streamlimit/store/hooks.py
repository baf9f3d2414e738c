"""The webhook queue's producer side: what the scripts (lua/_prelude.lua's ``notify``) and the
memory store append, one entry per event, for the delivery loop (streamlimit.webhooks) to send.

An entry is ``{u: user_id, e: event}``: ``e`` the JSON of the audit event (``at``, ``action``,
``actor``, ``streams``, ``value``, and for some actions ``device_id`` and ``active``). The actions
queued, and the webhook type each becomes: evicted -> stream.evicted, replaced -> stream.replaced,
stopped_all -> streams.stopped_all, limit_set/limit_cleared -> limit.changed, plan_set/
plan_cleared -> plan.changed, limit_reached -> limit.reached.

The consumer side of the memory queue (``read``, ``pending``, ``claim``, ``delete``) keeps a
Redis Stream consumer group's rules in-process, for streamlimit.webhooks.memory_queue.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamlimit.models import Event
from streamlimit.store import replies

QUEUED_ACTIONS = frozenset(
    {"evicted", "replaced", "stopped_all", "limit_set", "limit_cleared", "plan_set", "plan_cleared"}
    | {"limit_reached"}
)
REACHED_EVERY_MS = 60_000  # at most one limit.reached per user per minute
DEFAULT_MAX_LEN = 100_000  # the queue is trimmed (approximately, on Redis) to this many entries


def event_json(event: Event, active: int | None = None) -> dict[str, Any]:
    """An event as the scripts queue it (lua/_prelude.lua's ``record`` and ``notify``)."""
    fields: dict[str, Any] = {"at": event.at_ms, "action": event.action}
    fields |= {"actor": json.loads(replies.actor(event.actor)), "streams": list(event.streams)}
    extra = {"value": event.value, "device_id": event.device_id, "active": active}
    return fields | {k: v for k, v in extra.items() if v is not None}


@dataclass(frozen=True, slots=True)
class HookEntry:
    id: str  # the stream entry id, "<ms>-<seq>"
    user_id: str
    event: str  # JSON


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def _system_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Delivery:
    consumer: str
    at_ms: int  # of the last delivery: idle since
    count: int


class MemoryHookQueue:
    """The memory store's queue, trimmed to ``max_len`` like the Redis Stream; ``clock`` is the
    store's (entry ids are in its milliseconds), for the consumer side."""

    def __init__(self, max_len: int = DEFAULT_MAX_LEN, clock: Callable[[], int] = _system_clock_ms) -> None:
        self.max_len = max_len
        self.clock = clock
        self.entries: deque[HookEntry] = deque()  # oldest first
        self._last = (0, -1)
        self._read = (0, -1)  # the group's last delivered id
        # invariant: pending holds only ids still in entries, in id order (entries are read in order)
        self._pending: dict[str, _Delivery] = {}

    def add(self, now_ms: int, user_id: str, event: dict[str, Any]) -> None:
        ms, seq = self._last
        self._last = (ms, seq + 1) if now_ms <= ms else (now_ms, 0)
        entry_id = f"{self._last[0]}-{self._last[1]}"
        self.entries.append(HookEntry(entry_id, user_id, json.dumps(event, separators=(",", ":"))))
        while len(self.entries) > self.max_len:
            self._pending.pop(self.entries.popleft().id, None)

    def read(self, consumer: str, count: int) -> list[HookEntry]:
        """XREADGROUP ``>``: up to ``count`` entries never delivered, now pending for ``consumer``."""
        new: list[HookEntry] = []
        for entry in reversed(self.entries):  # the new ones are at the end
            if _order(entry.id) <= self._read:
                break
            new.append(entry)
        new = new[::-1][:count]
        now = self.clock()
        for entry in new:
            self._pending[entry.id] = _Delivery(consumer, now, 1)
        if new:
            self._read = _order(new[-1].id)
        return new

    def pending(self, min_idle_ms: int, after: str | None, count: int) -> list[tuple[str, int, int]]:
        """XPENDING IDLE: (id, idle_ms, deliveries) of up to ``count`` pending entries after
        ``after``, idle at least ``min_idle_ms``."""
        now, out = self.clock(), []
        for entry_id, d in self._pending.items():
            if now - d.at_ms >= min_idle_ms and (after is None or _order(entry_id) > _order(after)):
                out.append((entry_id, now - d.at_ms, d.count))
                if len(out) == count:
                    break
        return out

    def claim(self, consumer: str, min_idle_ms: int, entry_id: str) -> HookEntry | None:
        """XCLAIM of one entry: taken when still idle ``min_idle_ms``, one more delivery."""
        d = self._pending.get(entry_id)
        now = self.clock()
        if d is None or now - d.at_ms < min_idle_ms:
            return None
        d.consumer, d.at_ms, d.count = consumer, now, d.count + 1
        return next(e for e in self.entries if e.id == entry_id)

    def delete(self, entry_id: str) -> None:
        """XDEL and XACK."""
        self._pending.pop(entry_id, None)
        for i, entry in enumerate(self.entries):  # delivered entries are near the front
            if entry.id == entry_id:
                del self.entries[i]
                return
