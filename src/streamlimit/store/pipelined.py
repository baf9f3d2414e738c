"""A client for one Redis-protocol server: a few pipelined connections, every call bounded.

Why not redis-py's asyncio client: it sends each call on a pooled connection of its own and
spends about 100 µs of CPU per call in Python; pipelining all calls of a loop turn on one
connection costs about 10 µs (measured: docs/benchmarks.md). redis-py still parses the URL.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from redis.asyncio.connection import parse_url

from streamlimit.errors import ConfigurationError, StoreUnavailable
from streamlimit.store.resp import Connection, ReplyError, encode

_URL_KEYS = {"host", "port", "db", "path", "username", "password", "connection_class"}
_TLS_KEYS = {"ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname"}
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def _tls_context(params: dict[str, Any]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=params.get("ssl_ca_certs"))
    if params.get("ssl_certfile"):
        ctx.load_cert_chain(params["ssl_certfile"], params.get("ssl_keyfile"))
    reqs = str(params.get("ssl_cert_reqs", "required")).lower()
    if reqs not in _CERT_REQS:
        raise ConfigurationError(f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}, not {reqs!r}")
    ctx.check_hostname = reqs != "none" and params.get("ssl_check_hostname", True) not in (False, "false")
    ctx.verify_mode = _CERT_REQS[reqs]
    return ctx


class PipelinedClient:
    """``execute`` answers within ``timeout_s`` or raises ``StoreUnavailable``; replies that are
    server errors raise ``ReplyError``. Connections open on first use and after a loss."""

    def __init__(self, url: str, timeout_s: float, connections: int = 1) -> None:
        params: dict[str, Any] = dict(parse_url(url))
        unknown = set(params) - _URL_KEYS - _TLS_KEYS
        if unknown:
            raise ConfigurationError(f"unsupported store URL option(s): {', '.join(sorted(unknown))}")
        self._params = params
        self._tls = _tls_context(params) if url.startswith("rediss://") else None
        self._timeout_s = timeout_s
        self._conns: list[Connection | None] = [None] * connections
        self._opening: list[asyncio.Task[Connection] | None] = [None] * connections
        self._next = 0

    async def execute(self, *args: str | int) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        conn = await self._connection()
        waiter = conn.send(encode(args))
        timer = loop.call_at(deadline, self._expire, conn, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    def _expire(self, conn: Connection, waiter: asyncio.Future[Any]) -> None:
        if waiter.done():
            return
        ms = f"{self._timeout_s * 1000:.0f} ms"
        waiter.set_exception(StoreUnavailable(f"store call timed out after {ms}"))
        if conn.last_read <= asyncio.get_running_loop().time() - self._timeout_s:
            # nothing at all came back for a whole timeout: a dead peer, not a slow call
            conn.abort(StoreUnavailable(f"no reply from the store for {ms}; connection dropped"))

    async def _connection(self) -> Connection:
        i = self._next
        self._next = (i + 1) % len(self._conns)
        conn = self._conns[i]
        if conn is not None and conn.usable:
            return conn
        opening = self._opening[i]
        if opening is None:  # one attempt per slot, shared by every caller that needs it
            opening = self._opening[i] = asyncio.ensure_future(self._open())
            opening.add_done_callback(lambda task: self._opened(i, task))
        return await asyncio.shield(opening)

    def _opened(self, i: int, task: asyncio.Task[Connection]) -> None:
        self._opening[i] = None
        if not task.cancelled() and task.exception() is None:
            self._conns[i] = task.result()

    async def _open(self) -> Connection:
        p, loop = self._params, asyncio.get_running_loop()
        where = p.get("path") or f"{p.get('host', 'localhost')}:{p.get('port', 6379)}"
        conn: Connection | None = None
        try:
            async with asyncio.timeout(self._timeout_s):
                if "path" in p:
                    _, conn = await loop.create_unix_connection(Connection, p["path"])
                else:
                    host, port = p.get("host", "localhost"), int(p.get("port", 6379))
                    _, conn = await loop.create_connection(Connection, host, port, ssl=self._tls)
                prelude: list[tuple[str | int, ...]] = []
                if p.get("password"):
                    user = (p["username"],) if p.get("username") else ()
                    prelude.append(("AUTH", *user, p["password"]))
                if int(p.get("db") or 0):
                    prelude.append(("SELECT", int(p["db"])))
                for command in prelude:
                    await conn.send(encode(command))
        except (TimeoutError, OSError, ReplyError) as exc:
            if conn is not None:
                conn.abort(StoreUnavailable("store connection set-up failed"))
            if isinstance(exc, TimeoutError):
                raise StoreUnavailable(f"cannot connect to the store at {where} within the timeout") from None
            raise StoreUnavailable(f"cannot connect to the store at {where}: {exc}") from exc
        return conn

    async def aclose(self) -> None:
        for task in self._opening:
            if task is not None:
                task.cancel()
        for conn in self._conns:
            if conn is not None:
                conn.abort(StoreUnavailable("store client closed"))
        self._conns = [None] * len(self._conns)
