"""Store URL -> store. The only module that knows schemes and topologies."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from streamlimit.errors import ConfigurationError, StoreUnavailable
from streamlimit.settings import Settings
from streamlimit.store.base import Store
from streamlimit.store.embedded import EmbeddedServer
from streamlimit.store.memory import Clock, MemoryStore, system_clock_ms
from streamlimit.store.pipelined import PipelinedClient
from streamlimit.store.redis import RedisStore

log = logging.getLogger("streamlimit.store")

SCHEMES = ("memory", "redis", "rediss", "unix", "embedded")


def scheme_of(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        valid = ", ".join(f"{s}://" for s in SCHEMES)
        raise ConfigurationError(f"unknown store URL scheme {scheme!r} in {url!r}; use one of {valid}")
    return scheme


def embedded_path(url: str) -> Path:
    """``embedded://PATH``: ``embedded://./.streamlimit`` and ``embedded:///abs/dir`` both work."""
    rest = url.split("://", 1)[1]
    return Path(rest or ".streamlimit")


def store_client(url: str, settings: Settings) -> PipelinedClient:
    return PipelinedClient(url, settings.store_timeout_s, settings.store_connections)


async def open_store(settings: Settings, *, clock: Clock = system_clock_ms) -> Store:
    """Build the store for ``settings.store_url``. A store that is down is not an error here."""
    url = settings.store_url
    scheme = scheme_of(url)
    if scheme == "memory":
        return MemoryStore(clock)
    on_close: Callable[[], Awaitable[None]] | None = None
    if scheme == "embedded":
        server = EmbeddedServer(embedded_path(url), settings.embedded_server_bin)
        try:
            await server.join()
        except StoreUnavailable as exc:
            log.warning("embedded store not running yet, the supervisor will retry: %s", exc)
        server.supervise()
        url, on_close = server.url, server.aclose
    store = RedisStore(store_client(url, settings), on_close)
    try:
        await store.load_scripts()
    except StoreUnavailable as exc:
        log.warning("store not reachable at start-up, serving per on_store_error: %s", exc)
    return store
