"""One open live channel: the frames owed to its player, and a way to wait for them."""

from __future__ import annotations

import asyncio
from typing import Any

from streamlimit.models import Stream

Key = tuple[str, str]  # (user_id, stream_id)


class Channel:
    """Frames are queued by the hub and written by the channel's response. ``done``: the last
    frame is queued (the stream ended, or the worker is shutting down); ``hung_up``: the player
    went away. ``quiet_since``: the loop time of the last frame queued (the hub's keepalives)."""

    __slots__ = (
        "_waiter",
        "caller",
        "done",
        "expires_ms",
        "frames",
        "hung_up",
        "instance",
        "quiet_since",
        "renewed",
        "stream",
    )

    def __init__(self, stream: Stream, instance: str, caller: Any, now: float) -> None:
        self.stream = stream  # the lease as the channel's opening heartbeat answered it
        self.expires_ms = stream.expires_at_ms  # ... and its expiry as of the latest renewal
        self.instance = instance  # the channel's path (the problems' instance)
        self.caller = caller  # who opened it (the service's Caller)
        self.renewed = (b"", b"")  # the renewed event around its expires_at (hub.py)
        self.frames: list[bytes] = []
        self.done = self.hung_up = False
        self.quiet_since = now
        self._waiter: asyncio.Future[None] | None = None

    @property
    def key(self) -> Key:
        return self.stream.user_id, self.stream.stream_id

    def push(self, frame: bytes, now: float, last: bool = False) -> None:
        if self.done or self.hung_up:
            return
        self.frames.append(frame)
        self.done, self.quiet_since = last, now
        self._wake()

    def hang_up(self) -> None:
        self.hung_up = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self) -> bytes:
        """The frames queued, once there are any; b"" once the player hung up."""
        if not self.frames and not self.hung_up:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.hung_up:
            return b""
        out = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames.clear()
        return out
