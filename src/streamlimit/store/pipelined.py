"""A client for one Redis-protocol server: a few pipelined connections, every call bounded.

Why not redis-py's asyncio client: it sends each call on a pooled connection of its own and
spends about 100 µs of CPU per call in Python; pipelining all calls of a loop turn on one
connection costs about 10 µs (``python -m bench.client_cost``; docs/performance.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from streamlimit.errors import StoreUnavailable
from streamlimit.store.endpoint import Endpoint, endpoint
from streamlimit.store.resp import Connection, ReplyError, encode

Locate = Callable[[], Awaitable[Endpoint]]
_WRITES = ("EVALSHA", "EVAL")  # what replica_ack waits for: every script may write


class PipelinedClient:
    """``execute`` answers within ``timeout_s`` or raises ``StoreUnavailable``; replies that are
    server errors raise ``ReplyError``. Connections open on first use and after a loss.

    ``locate`` finds the server anew for each connection (Sentinel: the current primary);
    ``primary_only`` refuses a server whose ROLE is not master; with ``replica_ack`` N, script
    calls are answered only once N replicas hold them (one WAIT per batch, see resp.py).
    """

    def __init__(
        self,
        where: Endpoint | Locate,
        timeout_s: float,
        connections: int = 1,
        *,
        primary_only: bool = False,
        on_close: Callable[[], Awaitable[None]] | None = None,
        replica_ack: int = 0,
        ack_timeout_ms: int = 100,
    ) -> None:
        self._locate = where if callable(where) else None
        self.endpoint = where if isinstance(where, Endpoint) else None
        self._timeout_s = timeout_s
        self._primary_only = primary_only
        self._on_close = on_close
        self._ack = (replica_ack, ack_timeout_ms)
        self._conns: list[Connection | None] = [None] * connections
        self._opening: list[asyncio.Task[Connection] | None] = [None] * connections
        self._next = 0

    @property
    def target(self) -> Endpoint | Locate:
        """Where connections go: the endpoint, or how to find it (Sentinel)."""
        return self._locate or self.endpoint  # type: ignore[return-value]

    @property
    def primary_only(self) -> bool:
        return self._primary_only

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    @classmethod
    def from_url(cls, url: str, timeout_s: float, connections: int = 1) -> PipelinedClient:
        return cls(endpoint(url)[0], timeout_s, connections)

    async def execute(self, *args: str | int, asking: bool = False, timeout_s: float | None = None) -> Any:
        """One command; with ``asking``, preceded by ASKING on the same connection (cluster);
        ``timeout_s``, when given, is what is left of a caller's own deadline (at most ours)."""
        loop = asyncio.get_running_loop()
        budget = self._timeout_s if timeout_s is None else min(timeout_s, self._timeout_s)
        deadline = loop.time() + budget
        conn = await self._connection(deadline)
        if asking:
            conn.send(encode(("ASKING",))).add_done_callback(_ignore)
        sent_at = loop.time()
        waiter = conn.send(encode(args), ack=args[0] in _WRITES)
        timer = loop.call_at(deadline, self._expire, conn, waiter, sent_at)
        try:
            return await waiter
        except ReplyError as exc:
            if str(exc).startswith("READONLY"):  # a primary demoted under us: find the new one
                conn.abort(StoreUnavailable(f"store server became a replica: {exc}"))
            raise
        finally:
            timer.cancel()

    async def broadcast(self, *args: str | int) -> None:
        """Run on every server of the topology: here, the one."""
        await self.execute(*args)

    def _expire(self, conn: Connection, waiter: asyncio.Future[Any], sent_at: float) -> None:
        if waiter.done():
            return
        ms = f"{self._timeout_s * 1000:.0f} ms"
        waiter.set_exception(StoreUnavailable(f"store call timed out after {ms}", "timeout"))
        quiet = conn.quiet_since
        if quiet < sent_at and quiet <= asyncio.get_running_loop().time() - self._timeout_s:
            # an earlier call was owed a reply before this one was sent, and nothing at all came
            # back for a whole timeout: a dead peer. One slow call alone keeps the connection.
            conn.abort(StoreUnavailable(f"no reply from the store for {ms}; connection dropped"))

    async def _connection(self, deadline: float) -> Connection:
        i = self._next
        self._next = (i + 1) % len(self._conns)
        conn = self._conns[i]
        if conn is not None and conn.usable:
            return conn
        opening = self._opening[i]
        if opening is None:  # one attempt per slot, shared by every caller that needs it
            opening = self._opening[i] = asyncio.ensure_future(self._open())
            opening.add_done_callback(lambda task: self._opened(i, task))
        try:  # a caller with less time left than a whole set-up waits only for what it has
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(opening)
        except TimeoutError:
            ms = f"{self._timeout_s * 1000:.0f} ms"
            raise StoreUnavailable(f"no store connection within the call's {ms}", "timeout") from None

    def _opened(self, i: int, task: asyncio.Task[Connection]) -> None:
        self._opening[i] = None
        if not task.cancelled() and task.exception() is None:
            self._conns[i] = task.result()

    async def _open(self) -> Connection:
        loop = asyncio.get_running_loop()
        conn: Connection | None = None
        where = "the store"
        try:
            async with asyncio.timeout(self._timeout_s):
                ep = await self._locate() if self._locate else self.endpoint
                assert ep is not None
                where = f"the store at {ep}"
                if ep.path:
                    _, conn = await loop.create_unix_connection(self._protocol, ep.path)
                else:
                    _, conn = await loop.create_connection(self._protocol, ep.host, ep.port, ssl=ep.tls)
                for command in prelude(ep, self._primary_only):
                    reply = await conn.send(encode(command))
                    if command[0] == "ROLE" and reply[0] != "master":
                        raise StoreUnavailable(f"{where} is a {reply[0]}, not the primary")
        except (TimeoutError, OSError, ReplyError, StoreUnavailable) as exc:
            if conn is not None:
                conn.abort(StoreUnavailable("store connection set-up failed"))
            if isinstance(exc, StoreUnavailable):
                raise
            if isinstance(exc, TimeoutError):
                raise StoreUnavailable(f"cannot connect to {where} within the timeout", "timeout") from None
            raise StoreUnavailable(f"cannot connect to {where}: {exc}") from exc
        return conn

    def _protocol(self) -> Connection:
        return Connection(*self._ack)

    async def aclose(self) -> None:
        for task in self._opening:
            if task is not None:
                task.cancel()
        for conn in self._conns:
            if conn is not None:
                conn.abort(StoreUnavailable("store client closed"))
        self._conns = [None] * len(self._conns)
        if self._on_close is not None:
            await self._on_close()


def prelude(ep: Endpoint, primary_only: bool) -> list[tuple[str | int, ...]]:
    """What a new connection sends before any call: log in, pick the database, check the role."""
    out: list[tuple[str | int, ...]] = []
    if ep.password:
        out.append(("AUTH", *((ep.username,) if ep.username else ()), ep.password))
    if ep.db:
        out.append(("SELECT", ep.db))
    if primary_only:
        out.append(("ROLE",))
    return out


def _ignore(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
