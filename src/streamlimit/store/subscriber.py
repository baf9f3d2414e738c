"""A pub/sub subscription to one Redis-protocol server: shard channels (SSUBSCRIBE, 7.0+).

Why not redis-py's asyncio PubSub (redis 8.1 has sharded pub/sub, also on its cluster client):
the subscription must reach the very server the pipelined client reaches, found the same way
(the embedded store's unix socket, TLS, an ACL login, Sentinel's current primary, our own
Cluster slot map), and redis-py would be a second connection stack configured apart from it.
This is one connection in RESP2 subscribed mode, parsed by hiredis like ``resp.Connection``.

Messages published while the connection is down are lost: after a reconnection every channel is
subscribed again and ``on_gap`` is called, so that the caller catches up by other means (the
live channels renew at once: a renewal finds a stream's tombstone).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import hiredis

from streamlimit.errors import StoreUnavailable
from streamlimit.store.endpoint import Endpoint
from streamlimit.store.pipelined import Locate, prelude
from streamlimit.store.resp import ReplyError, encode

log = logging.getLogger("streamlimit.store")

OnMessage = Callable[[str, str], None]  # (channel, data)
BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)  # pauses between reconnection attempts, then 1 s each


class _Wire(asyncio.Protocol):
    """The socket: every parsed reply to ``on_reply``, the loss to ``lost``."""

    def __init__(self, on_reply: Callable[[Any], None]) -> None:
        self._reader = hiredis.Reader(encoding="utf-8", errors="replace")
        self._on_reply = on_reply
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                self._on_reply(reply)
        except hiredis.ProtocolError:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def send(self, *commands: tuple[str | int, ...]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(encode(c) for c in commands))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class Subscriber:
    """Shard channels of one server. ``subscribe`` returns once the server confirmed (or raises
    ``StoreUnavailable`` after ``timeout_s``; the channel stays wanted and is subscribed when the
    connection comes back); ``ping`` returns once every message published before it was handed
    to ``on_message``. ``on_moved(channel)``: the server dropped a wanted channel (its slot moved,
    on a Cluster); without it the channel is subscribed again here. ``on_refused``: an error
    reply (default: logged); ``on_down``: connecting failed (then every fifth failure)."""

    def __init__(
        self,
        where: Endpoint | Locate,
        timeout_s: float,
        on_message: OnMessage,
        on_gap: Callable[[], None],
        *,
        primary_only: bool = False,
        on_moved: Callable[[str], None] | None = None,
        on_refused: Callable[[ReplyError], None] | None = None,
        on_down: Callable[[], None] | None = None,
    ) -> None:
        self._where = where
        self._timeout_s = timeout_s
        self._on_message, self._on_gap, self._on_moved = on_message, on_gap, on_moved
        self._on_refused, self._on_down = on_refused, on_down
        self._primary_only = primary_only
        self.wanted: set[str] = set()
        self._confirming: dict[str, list[asyncio.Future[None]]] = {}
        self._pings: deque[asyncio.Future[None]] = deque()
        self._setup: deque[asyncio.Future[Any]] = deque()  # replies owed to the set-up commands
        self._wire: _Wire | None = None
        self._ready = False  # the connection is set up and in subscribed mode
        self._runner: asyncio.Task[None] | None = None
        self._closed = False

    def _ensure_running(self) -> None:
        if self._runner is None and not self._closed:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="subscriber")

    async def subscribe(self, channel: str) -> None:
        self.wanted.add(channel)
        self._ensure_running()
        waiter = asyncio.get_running_loop().create_future()
        self._confirming.setdefault(channel, []).append(waiter)
        if self._ready and self._wire is not None:
            self._wire.send(("SSUBSCRIBE", channel))
        try:
            async with asyncio.timeout(self._timeout_s):
                await waiter
        except TimeoutError:
            raise StoreUnavailable(f"no confirmation of SSUBSCRIBE {channel} in time", "timeout") from None
        finally:
            waiters = self._confirming.get(channel)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._confirming[channel]

    def unsubscribe(self, channel: str) -> None:
        self.wanted.discard(channel)
        if self._ready and self._wire is not None:
            self._wire.send(("SUNSUBSCRIBE", channel))

    async def ping(self) -> None:
        if not self._ready or self._wire is None:
            raise StoreUnavailable("the subscription is not connected")
        waiter = asyncio.get_running_loop().create_future()
        self._pings.append(waiter)
        self._wire.send(("PING",))
        async with asyncio.timeout(self._timeout_s):
            await waiter

    @property
    def connected(self) -> bool:
        return self._ready

    async def _run(self) -> None:
        attempt, ever = 0, False
        while not self._closed:
            try:
                wire = await self._connect()
            except StoreUnavailable as exc:
                pause = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                if attempt == 0:
                    log.warning("pub/sub subscription down (retrying every %g s at most): %s", 1.0, exc)
                attempt += 1
                self._fail_waiters(exc)
                if self._on_down is not None and attempt % len(BACKOFF_S) == 1:
                    self._on_down()
                await asyncio.sleep(pause)
                continue
            if attempt or ever:
                log.info("pub/sub subscription back: %d channel(s) subscribed again", len(self.wanted))
                self._on_gap()
            attempt, ever = 0, True
            await wire.lost
            self._ready, self._wire = False, None
            self._fail_waiters(StoreUnavailable("pub/sub connection lost"))

    def _fail_waiters(self, exc: StoreUnavailable) -> None:
        for waiter in self._pings:
            if not waiter.done():
                waiter.set_exception(exc)
                waiter.exception()  # retrieved: a ping's caller may have given up already
        self._pings.clear()

    async def _connect(self) -> _Wire:
        loop = asyncio.get_running_loop()
        wire: _Wire | None = None
        try:
            async with asyncio.timeout(self._timeout_s):
                ep = await self._where() if callable(self._where) else self._where
                if ep.path:
                    _, wire = await loop.create_unix_connection(lambda: _Wire(self._reply), ep.path)
                else:
                    _, wire = await loop.create_connection(
                        lambda: _Wire(self._reply), ep.host, ep.port, ssl=ep.tls
                    )
                for command in prelude(ep, self._primary_only):
                    owed = loop.create_future()
                    self._setup.append(owed)
                    wire.send(command)
                    reply = await owed
                    if command[0] == "ROLE" and reply[0] != "master":
                        raise StoreUnavailable(f"{ep} is a {reply[0]}, not the primary")
        except (TimeoutError, OSError, ReplyError, StoreUnavailable) as exc:
            self._setup.clear()
            if wire is not None:
                wire.close()
            if isinstance(exc, StoreUnavailable):
                raise
            raise StoreUnavailable(f"pub/sub connection failed: {exc!r}") from exc
        self._wire, self._ready = wire, True
        wire.send(*(("SSUBSCRIBE", channel) for channel in sorted(self.wanted)))
        return wire

    def _reply(self, reply: Any) -> None:
        if self._setup:
            owed = self._setup.popleft()
            if isinstance(reply, ReplyError):
                owed.set_exception(reply)
            else:
                owed.set_result(reply)
            return
        if isinstance(reply, ReplyError):  # a refused SSUBSCRIBE (ACL, a slot served elsewhere)
            if self._on_refused is not None:
                self._on_refused(reply)
            else:
                log.warning("pub/sub command refused: %s", reply)
            return
        kind = reply[0] if isinstance(reply, list) and reply else None
        if kind in ("smessage", "message"):
            self._on_message(reply[1], reply[2])
        elif kind == "ssubscribe":
            for waiter in self._confirming.pop(reply[1], []):
                if not waiter.done():
                    waiter.set_result(None)
        elif kind == "sunsubscribe" and reply[1] in self.wanted:
            # not asked for (or asked for and wanted again since): the slot moved elsewhere
            if self._on_moved is not None:
                self.wanted.discard(reply[1])
                self._on_moved(reply[1])
            elif self._wire is not None:
                self._wire.send(("SSUBSCRIBE", reply[1]))
        elif kind == "pong" and self._pings:
            waiter = self._pings.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def aclose(self) -> None:
        self._closed = True
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        if self._wire is not None:
            self._wire.close()
        self._ready, self._wire = False, None
