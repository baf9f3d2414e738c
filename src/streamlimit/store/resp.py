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
Held = list[tuple[asyncio.Future[Any], asyncio.Future[Any]]]  # (reply, caller) awaiting a WAIT


def encode(args: tuple[str | int, ...]) -> bytes:
    """A command as a RESP array of bulk strings (hiredis packs it in C)."""
    packed: bytes = hiredis.pack_command(cast(Any, args))  # its stub says a 1-tuple
    return packed


class Connection(asyncio.Protocol):
    """Replies come back in the order commands were sent; a caller that gave up keeps its place."""

    def __init__(self, replica_ack: int = 0, ack_timeout_ms: int = 0) -> None:
        self._loop = asyncio.get_running_loop()
        self._ack = replica_ack  # group commit: one WAIT after each batch that holds a write
        self._ack_timeout_ms = ack_timeout_ms
        self._held: Held = []  # (reply, caller) of the batch being built
        self._reader = hiredis.Reader(encoding="utf-8", errors="replace")
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._buffer: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        # the later of the last reply and the moment the connection began to owe one: silent
        # since then (an idle connection is not silent, it owes nothing)
        self.quiet_since = self._loop.time()
        self._answered = False  # anything at all came back on this connection
        self.peer = "the store"  # host:port or the socket's path, once connected

    @property
    def usable(self) -> bool:
        return self.lost is None and self._transport is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.peer = _peer_of(transport.get_extra_info("peername")) or self.peer

    def data_received(self, data: bytes) -> None:
        self.quiet_since = self._loop.time()
        self._reader.feed(data)
        self._answered = True
        try:
            self._dispatch()
        except hiredis.ProtocolError:  # an HTTP server, a TLS port, ...: not worth a traceback
            self.abort(StoreUnavailable(not_redis(self.peer, data)))

    def _dispatch(self) -> None:
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
        if not self._answered and self._waiting:  # what a TLS port does to plain RESP
            self._fail(StoreUnavailable(f"{self.peer} closed the connection without answering: {HINT}"))
            return
        detail = f": {type(exc).__name__}: {exc}" if exc else ""
        self._fail(StoreUnavailable(f"store connection closed{detail}"))

    def send(self, command: bytes, *, ack: bool = False) -> asyncio.Future[Any]:
        """Queue one encoded command; the buffer is written once, at the end of this loop turn.
        With ``ack`` (and replica_ack set), its reply is held until the batch's WAIT answers."""
        if self.lost is not None:
            raise self.lost
        waiter = self._loop.create_future()
        if not self._waiting:
            self.quiet_since = self._loop.time()
        if not self._buffer:
            self._loop.call_soon(self._flush)
        self._buffer.append(command)
        self._waiting.append(waiter)
        if ack and self._ack:
            caller = self._loop.create_future()
            self._held.append((waiter, caller))
            return caller
        return waiter

    @property
    def pending(self) -> int:
        return len(self._waiting)

    def _flush(self) -> None:
        if self._held and self.usable:
            held, self._held = self._held, []
            acked = self._loop.create_future()
            self._buffer.append(encode(("WAIT", self._ack, self._ack_timeout_ms)))
            self._waiting.append(acked)
            acked.add_done_callback(lambda f: _release(held, f, self._ack))
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
        held, self._held = self._held, []
        for reply, caller in held:
            reply.cancel()
            if not caller.done():
                caller.set_exception(exc)
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(exc)


def _peer_of(name: object) -> str:
    """host:port of a TCP peer, or the unix socket's path."""
    if isinstance(name, tuple):
        host = f"[{name[0]}]" if ":" in name[0] else name[0]
        return f"{host}:{name[1]}"
    return str(name) if name else ""


HINT = "not a Redis server, or a TLS port (use rediss://)"


def not_redis(peer: str, answer: bytes) -> str:
    """What to say of a server whose answer is not RESP, with a hint of what it speaks."""
    if answer[:1] in (b"\x15", b"\x16"):  # a TLS alert or handshake record
        return f"{peer} is not a Redis server: it speaks TLS (use rediss://)"
    if answer.startswith((b"HTTP/", b"<")):  # a status line, or the page of an HTTP/0.9 answer
        return f"{peer} is not a Redis server: it speaks HTTP"
    return f"{peer} is not a Redis server: it answered {answer[:16]!r}"


def _release(
    held: list[tuple[asyncio.Future[Any], asyncio.Future[Any]]], acked: asyncio.Future[Any], needed: int
) -> None:
    """The batch's WAIT answered: hand each held reply to its caller, or fail it unacknowledged."""
    failure = acked.exception() if not acked.cancelled() else StoreUnavailable("connection lost")
    if failure is None and acked.result() < needed:
        failure = StoreUnavailable(f"writes acknowledged by {acked.result()} of {needed} replica(s) in time")
    for reply, caller in held:
        error = reply.exception() if not reply.cancelled() else failure  # retrieves it too
        if caller.done():
            continue
        if error is not None:  # a server error first: NOSCRIPT is retried
            caller.set_exception(error)
        elif failure is not None:
            caller.set_exception(failure)
        else:
            caller.set_result(reply.result())
