"""One open live channel: the frames owed to its player, and a way to wait for them."""

from __future__ import annotations

import asyncio
from typing import Any

from streamlimit.live import sse
from streamlimit.models import Stream

Key = tuple[str, str]  # (user_id, stream_id)


class Channel:
    """Frames are queued by the hub and written by the channel's response. ``done``: the last
    frame is queued (the stream ended, or the worker is shutting down); ``hung_up``: the player
    went away."""

    __slots__ = ("_waiter", "caller", "done", "frames", "hung_up", "instance", "stream")

    def __init__(self, stream: Stream, instance: str, caller: Any) -> None:
        self.stream = stream  # the lease as of the latest renewal
        self.instance = instance  # the channel's path (the problems' instance)
        self.caller = caller  # who opened it (the service's Caller)
        self.frames: list[bytes] = []
        self.done = self.hung_up = False
        self._waiter: asyncio.Future[None] | None = None

    @property
    def key(self) -> Key:
        return self.stream.user_id, self.stream.stream_id

    def push(self, frame: bytes, last: bool = False) -> None:
        if self.done or self.hung_up:
            return
        self.frames.append(frame)
        self.done = last
        self._wake()

    def hang_up(self) -> None:
        self.hung_up = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self, keepalive_s: float) -> bytes:
        """The frames queued, once there are any; a keepalive comment after ``keepalive_s`` of
        nothing; b"" once the player hung up."""
        if not self.frames and not self.hung_up:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(keepalive_s):
                    await self._waiter
            except TimeoutError:
                return sse.KEEPALIVE
            finally:
                self._waiter = None
        if self.hung_up:
            return b""
        out = b"".join(self.frames)
        self.frames.clear()
        return out
