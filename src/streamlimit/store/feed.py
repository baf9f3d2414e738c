"""The Redis store's feed of kicks: the users' live channels (lua/_prelude.lua's ``kick``),
subscribed for the users a worker watches, on the server (or Cluster node) holding each."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from streamlimit.models import Kick
from streamlimit.store import replies
from streamlimit.store.cluster import ClusterClient
from streamlimit.store.cluster_subscriber import ClusterSubscriber
from streamlimit.store.keys import LIVE_PATTERN, live_channel
from streamlimit.store.pipelined import PipelinedClient
from streamlimit.store.subscriber import OnMessage, Subscriber

log = logging.getLogger("streamlimit.store")


class Subscription(Protocol):
    async def subscribe(self, channel: str) -> None: ...

    def unsubscribe(self, channel: str) -> None: ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...


def subscriber_for(client: Any, on_message: OnMessage, on_gap: Callable[[], None]) -> Subscription:
    """A subscription on the servers ``client`` reaches: its server (or Sentinel's primary), or
    each Cluster node for the channels of its slots."""
    if isinstance(client, ClusterClient):
        return ClusterSubscriber(client, on_message, on_gap)
    if isinstance(client, PipelinedClient):
        return Subscriber(
            client.target, client.timeout_s, on_message, on_gap, primary_only=client.primary_only
        )
    raise TypeError(f"no subscription for a {type(client).__name__}")


class RedisFeed:
    """``watch(user)``: SSUBSCRIBE the user's channel; each message becomes a ``Kick``."""

    def __init__(
        self, subscribe: Callable[[OnMessage], Subscription], on_kick: Callable[[Kick], None]
    ) -> None:
        self._on_kick = on_kick
        self._sub = subscribe(self._message)

    async def watch(self, user_id: str) -> None:
        await self._sub.subscribe(live_channel(user_id))

    def unwatch(self, user_id: str) -> None:
        self._sub.unsubscribe(live_channel(user_id))

    async def sync(self) -> None:
        await self._sub.ping()

    async def close(self) -> None:
        await self._sub.aclose()

    def _message(self, channel: str, data: str) -> None:
        m = LIVE_PATTERN.fullmatch(channel)
        if m is None:
            return
        try:
            kick = replies.kick(m["user"], data)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed kick on %s: %r (%s)", channel, data[:200], exc)
            return
        self._on_kick(kick)
