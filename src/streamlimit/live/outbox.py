"""What a live response owes its client: frames queued by the hub, and a way to wait for them."""

from __future__ import annotations

import asyncio


class Outbox:
    """``done``: the last frame is queued (the stream ended, the worker is shutting down);
    ``hung_up``: the client went away; ``quiet_since``: the loop time of the last frame queued
    (the hub's keepalives)."""

    __slots__ = ("_waiter", "done", "frames", "hung_up", "quiet_since")

    def __init__(self, now: float) -> None:
        self.frames: list[bytes] = []
        self.done = self.hung_up = False
        self.quiet_since = now
        self._waiter: asyncio.Future[None] | None = None

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
        """The frames queued, once there are any; b"" once the client hung up."""
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
