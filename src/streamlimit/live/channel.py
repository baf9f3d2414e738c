"""One open live channel: a stream's outbox, and what the hub keeps of its lease."""

from __future__ import annotations

from typing import Any

from streamlimit.live.outbox import Outbox
from streamlimit.models import Stream

Key = tuple[str, str]  # (user_id, stream_id)


class Channel(Outbox):
    __slots__ = ("caller", "expires_ms", "instance", "limit", "renewed", "stream")

    def __init__(self, stream: Stream, instance: str, caller: Any, now: float) -> None:
        super().__init__(now)
        self.stream = stream  # the lease as the channel's opening heartbeat answered it
        self.expires_ms = stream.expires_at_ms  # ... and its expiry as of the latest renewal
        self.instance = instance  # the channel's path (the problems' instance)
        self.caller = caller  # who opened it (the service's Caller)
        self.renewed = (b"", b"")  # the renewed event around its expires_at (hub.py)
        self.limit: int | None = None  # the user's limit as the channel opened (grants' lim)

    @property
    def key(self) -> Key:
        return self.stream.user_id, self.stream.stream_id


class View(Outbox):
    """A live view of one user's streams (the console's): the list again after each kick."""

    __slots__ = ("caller", "listing", "stale", "user_id")

    def __init__(self, user_id: str, caller: Any, now: float) -> None:
        super().__init__(now)
        self.user_id, self.caller = user_id, caller
        self.listing = False  # a listing is on its way
        self.stale = False  # a kick came while it was
