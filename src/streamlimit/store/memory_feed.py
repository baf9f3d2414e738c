"""The memory store's kicks: its live channels' feed, in the process (lua/_prelude.lua's ``kick``
is the Redis store's)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from streamlimit.models import Kick

OnKick = Callable[[Kick], None]


class MemoryFeed:
    """One worker's feed: the kicks of the users it watches, handed over on a later loop turn (as
    a message from a server would be)."""

    def __init__(self, feeds: MemoryFeeds, on_kick: OnKick) -> None:
        self._feeds, self.on_kick = feeds, on_kick
        self.watched: set[str] = set()

    async def watch(self, user_id: str) -> None:
        self.watched.add(user_id)

    def unwatch(self, user_id: str) -> None:
        self.watched.discard(user_id)

    async def sync(self) -> None:
        await asyncio.sleep(0)  # the kicks already published were scheduled before this turn

    async def close(self) -> None:
        self._feeds.opened.discard(self)


class MemoryFeeds:
    def __init__(self) -> None:
        self.opened: set[MemoryFeed] = set()

    def open(self, on_kick: OnKick) -> MemoryFeed:
        feed = MemoryFeed(self, on_kick)
        self.opened.add(feed)
        return feed

    def publish(self, kick: Kick) -> None:
        if not kick.stream_ids:
            return
        for feed in self.opened:
            if kick.user_id in feed.watched:
                asyncio.get_running_loop().call_soon(feed.on_kick, kick)
