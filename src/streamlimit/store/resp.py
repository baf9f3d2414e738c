"""One Redis-protocol connection that pipelines every command sent in an event-loop turn.

Commands are encoded into a buffer that is written once per loop turn, and replies, parsed
by hiredis, resolve the callers' futures in order: a hundred concurrent requests cost one
write and a few reads, not a hundred of each (see docs/benchmarks.md for what this saves).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast

import hiredis

from streamlimit.errors import StoreUnavailable

ReplyError = hiredis.ReplyError


def encode(args: tuple[str | int, ...]) -> bytes:
    """A command as a RESP array of bulk strings (hiredis packs it in C)."""
    packed: bytes = hiredis.pack_command(cast(Any, args))  # its stub says a 1-tuple
    return packed


class Connection(asyncio.Protocol):
    """Replies come back in the order commands were sent; a caller that gave up keeps its place."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._reader = hiredis.Reader(encoding="utf-8", errors="replace")
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._buffer: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self.last_read = self._loop.time()

    @property
    def usable(self) -> bool:
        return self.lost is None and self._transport is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self.last_read = self._loop.time()
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            if not self._waiting:  # a reply nobody asked for: the stream is out of step
                self.abort(StoreUnavailable("store sent an unexpected reply"))
                return
            waiter = self._waiting.popleft()
            if waiter.done():  # its caller timed out or was cancelled
                continue
            if isinstance(reply, ReplyError):
                waiter.set_exception(reply)
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        detail = f": {type(exc).__name__}: {exc}" if exc else ""
        self._fail(StoreUnavailable(f"store connection closed{detail}"))

    def send(self, command: bytes) -> asyncio.Future[Any]:
        """Queue one encoded command; the buffer is written once, at the end of this loop turn."""
        if self.lost is not None:
            raise self.lost
        waiter = self._loop.create_future()
        if not self._buffer:
            self._loop.call_soon(self._flush)
        self._buffer.append(command)
        self._waiting.append(waiter)
        return waiter

    @property
    def pending(self) -> int:
        return len(self._waiting)

    def _flush(self) -> None:
        if self._buffer and self.usable:
            assert self._transport is not None
            self._transport.write(b"".join(self._buffer))
        self._buffer.clear()

    def abort(self, exc: StoreUnavailable) -> None:
        """Drop the connection now: every caller still waiting gets ``exc``."""
        self._fail(exc)
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, exc: StoreUnavailable) -> None:
        if self.lost is None:
            self.lost = exc
        self._buffer.clear()
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
