"""The webhook queue's producer side: what the scripts (lua/_prelude.lua's ``notify``) and the
memory store append, one entry per event, for the delivery loop (streamlimit.webhooks) to send.

An entry is ``{u: user_id, e: event}``: ``e`` the JSON of the audit event (``at``, ``action``,
``actor``, ``streams``, ``value``, and for some actions ``device_id`` and ``active``). The actions
queued, and the webhook type each becomes: evicted -> stream.evicted, replaced -> stream.replaced,
stopped_all -> streams.stopped_all, limit_set/limit_cleared -> limit.changed, plan_set/
plan_cleared -> plan.changed, limit_reached -> limit.reached.
"""

from __future__ import annotations

import json
from collections import deque
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


class MemoryHookQueue:
    """The memory store's queue, trimmed to ``max_len`` like the Redis Stream."""

    def __init__(self, max_len: int = DEFAULT_MAX_LEN) -> None:
        self.max_len = max_len
        self.entries: deque[HookEntry] = deque()
        self._last = (0, -1)

    def add(self, now_ms: int, user_id: str, event: dict[str, Any]) -> None:
        ms, seq = self._last
        self._last = (ms, seq + 1) if now_ms <= ms else (now_ms, 0)
        entry_id = f"{self._last[0]}-{self._last[1]}"
        self.entries.append(HookEntry(entry_id, user_id, json.dumps(event, separators=(",", ":"))))
        while len(self.entries) > self.max_len:
            self.entries.popleft()
