"""What the delivery loop needs of a queue: a consumer group's operations on one or more streams
(a Redis Stream each; in-process for memory://), by the same rules as Redis Streams: an entry
read or claimed is pending for its consumer until it is acknowledged; a pending entry idle long
enough can be claimed by any consumer, which counts one more delivery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

GROUP = "streamlimit"  # the consumer group every instance reads with


@dataclass(frozen=True, slots=True)
class Entry:
    stream: str  # the queue's key
    id: str  # "<ms>-<seq>", unique within its stream
    user_id: str
    event: str  # the audit event's JSON
    event_id: str  # the webhook's id: unique across the streams, the same for every copy


@dataclass(frozen=True, slots=True)
class Pending:
    id: str
    idle_ms: int
    deliveries: int


@dataclass(frozen=True, slots=True)
class Depth:
    entries: int  # not yet delivered (delivered entries are deleted)
    oldest_ms: int | None  # the store's clock when the oldest of them was queued


class Queue(Protocol):
    async def now_ms(self) -> int:
        """The store's clock (entry ids are in its milliseconds)."""

    async def streams(self) -> Sequence[str]:
        """The streams that may hold entries now."""

    async def read(self, stream: str, consumer: str, count: int) -> list[Entry]:
        """Up to ``count`` entries never delivered to the group, now pending for ``consumer``."""

    async def pending(self, stream: str, min_idle_ms: int, after: str | None, count: int) -> list[Pending]:
        """Up to ``count`` pending entries idle at least ``min_idle_ms``, oldest first, after the
        id ``after`` (None: from the first)."""

    async def claim(self, stream: str, consumer: str, min_idle_ms: int, entry_id: str) -> Entry | None:
        """Take a pending entry for ``consumer`` if it is still idle ``min_idle_ms`` (another
        consumer may have taken it since); None when it was not, or no longer exists."""

    async def done(self, stream: str, entry_id: str) -> None:
        """Delivered (or given up): deleted from the stream, then acknowledged."""

    async def depth(self) -> Depth:
        """What is queued, over the streams ``streams`` named (the loop asks once per poll)."""
