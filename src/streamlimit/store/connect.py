"""Store URL -> store. The only module that knows schemes and topologies."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from streamlimit.errors import ConfigurationError, StoreUnavailable
from streamlimit.outage import OutageLog
from streamlimit.settings import Settings
from streamlimit.store.base import Store
from streamlimit.store.cluster import ClusterClient
from streamlimit.store.embedded import EmbeddedServer
from streamlimit.store.endpoint import endpoint, endpoints
from streamlimit.store.hooks import MemoryHookQueue
from streamlimit.store.memory import Clock, MemoryStore, system_clock_ms
from streamlimit.store.pipelined import PipelinedClient
from streamlimit.store.redis import Client, RedisStore
from streamlimit.store.sentinel import PrimaryLocator

if TYPE_CHECKING:
    from streamlimit.metrics import Metrics

log = logging.getLogger("streamlimit.store")

SCHEMES = (
    "memory",
    "redis",
    "rediss",
    "unix",
    "embedded",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)
_SENTINEL_OPTIONS = frozenset({"sentinel_username", "sentinel_password"})


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


def store_client(url: str, settings: Settings) -> Client:
    """The client for a server URL of any topology (not memory:// or embedded://)."""
    scheme, timeout_s, conns = scheme_of(url), settings.store_timeout_s, settings.store_connections
    ack = settings.replica_ack
    ack_ms = settings.replica_ack_timeout_ms
    if scheme.endswith("+cluster"):
        seeds, path, _ = endpoints(url)
        if path not in ("", "0"):
            raise ConfigurationError(f"a cluster has only database 0, not {path!r}")
        return ClusterClient(seeds, timeout_s, conns, replica_ack=ack, ack_timeout_ms=ack_ms)
    if scheme.endswith("+sentinel"):
        sentinels, service, options = endpoints(url, _SENTINEL_OPTIONS)
        if not service:
            raise ConfigurationError(f"name the monitored service: {scheme}://host:port,.../SERVICE")
        login = (options.get("sentinel_username"), options.get("sentinel_password"))
        locate = PrimaryLocator([s.with_login(*login) for s in sentinels], service, sentinels[0], timeout_s)
        return PipelinedClient(
            locate, timeout_s, conns, primary_only=True, on_close=locate.aclose, replica_ack=ack,
            ack_timeout_ms=ack_ms,
        )  # fmt: skip
    return PipelinedClient(endpoint(url)[0], timeout_s, conns, replica_ack=ack, ack_timeout_ms=ack_ms)


async def open_store(
    settings: Settings,
    *,
    clock: Clock = system_clock_ms,
    metrics: Metrics | None = None,
    outage_log: OutageLog | None = None,
) -> Store:
    """Build the store for ``settings.store_url``. A store that is down is not an error here:
    it is reported (to ``outage_log``) and the service starts anyway."""
    url = settings.store_url
    scheme = scheme_of(url)
    if scheme == "memory":
        hooks = MemoryHookQueue(settings.webhook_queue_max_len, clock) if settings.webhook_url else None
        return MemoryStore(clock, hooks)
    on_close: Callable[[], Awaitable[None]] | None = None
    if scheme == "embedded":
        server = EmbeddedServer(embedded_path(url), settings.embedded_server_bin)
        try:
            await server.join()
        except StoreUnavailable as exc:
            log.warning("embedded store not running yet, the supervisor will retry: %s", exc)
        server.supervise()
        url, on_close = server.url, server.aclose
    hooks_max_len = settings.webhook_queue_max_len if settings.webhook_url else 0
    store = RedisStore(
        store_client(url, settings), on_close, metrics,
        hooks_max_len=hooks_max_len, hooks_per_slot=scheme.endswith("+cluster"),
    )  # fmt: skip
    await _wait_for(store, settings.store_startup_wait_s, outage_log or OutageLog())
    return store


async def _wait_for(store: RedisStore, wait_s: float, outage_log: OutageLog) -> None:
    """Load the scripts, retrying for up to ``wait_s`` (a store starting next to us); then serve
    anyway, per the outage policy, and let /readyz say whether the store answers. With no wait
    at all, nothing is tried: the first call loads what it needs."""
    if wait_s <= 0:
        return
    deadline = time.monotonic() + wait_s
    while True:
        try:
            await store.load_scripts()
            return
        except StoreUnavailable as exc:
            if time.monotonic() >= deadline:
                outage_log.warn("at start-up; serving per on_store_error", exc)
                return
        await asyncio.sleep(0.2)
