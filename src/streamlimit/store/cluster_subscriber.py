"""Shard channels on a Cluster: each one subscribed on the primary that serves its slot (a shard
channel hashes like a key), one ``Subscriber`` per primary; a channel whose slot moved (the node
unsubscribed it, or answered MOVED) or whose node is down is subscribed again where the slot
map says, and the gap reported (what was published meanwhile is lost)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.crc import key_slot

from streamlimit.errors import StoreUnavailable
from streamlimit.store.cluster import ClusterClient
from streamlimit.store.resp import ReplyError
from streamlimit.store.subscriber import OnMessage, Subscriber

log = logging.getLogger("streamlimit.store")


class ClusterSubscriber:
    def __init__(self, cluster: ClusterClient, on_message: OnMessage, on_gap: Callable[[], None]) -> None:
        self._cluster = cluster
        self._on_message, self._on_gap = on_message, on_gap
        self._nodes: dict[str, Subscriber] = {}
        self._home: dict[str, str] = {}  # channel -> the address it is subscribed at
        self._moving: set[asyncio.Task[None]] = set()

    def _node(self, addr: str, where: object) -> Subscriber:
        node = self._nodes.get(addr)
        if node is None:
            node = self._nodes[addr] = Subscriber(
                where,  # type: ignore[arg-type]
                self._cluster.timeout_s,
                self._on_message,
                self._on_gap,
                on_moved=self._moved,
                on_refused=self._refused,
                on_down=lambda: self._down(addr),
            )
        return node

    async def subscribe(self, channel: str) -> None:
        addr, where = await self._cluster.primary_of(key_slot(channel.encode()))
        old = self._home.get(channel)
        if old is not None and old != addr:
            self._nodes[old].unsubscribe(channel)
        self._home[channel] = addr
        await self._node(addr, where).subscribe(channel)

    def unsubscribe(self, channel: str) -> None:
        addr = self._home.pop(channel, None)
        if addr is not None:
            self._nodes[addr].unsubscribe(channel)

    async def ping(self) -> None:
        await asyncio.gather(*(n.ping() for n in self._nodes.values() if n.wanted))

    def _move(self, channels: list[str], only_if_elsewhere: bool = False) -> None:
        """Subscribe again where the refreshed slot map says (``only_if_elsewhere``: only the
        channels whose slot has another primary now), in the background; then report the gap."""

        async def again() -> None:
            try:
                await self._cluster.primary_of(0, fresh=True)  # one refresh of the whole map
            except StoreUnavailable as exc:
                log.warning("cluster slot map unavailable; pub/sub channels stay put: %s", exc)
                return
            moving = []
            for channel in channels:
                if channel in self._home:
                    addr, _ = await self._cluster.primary_of(key_slot(channel.encode()))
                    if not only_if_elsewhere or addr != self._home[channel]:
                        moving.append(channel)
            done = await asyncio.gather(*(self.subscribe(c) for c in moving), return_exceptions=True)
            failed = [r for r in done if isinstance(r, BaseException)]
            if failed:
                log.warning("%d pub/sub channel(s) not subscribed again: %s", len(failed), failed[0])
            if moving:
                self._on_gap()

        task = asyncio.get_running_loop().create_task(again())
        self._moving.add(task)
        task.add_done_callback(self._moving.discard)

    def _moved(self, channel: str) -> None:
        self._move([channel])

    def _refused(self, error: ReplyError) -> None:
        kind, _, rest = str(error).partition(" ")
        if kind != "MOVED":
            log.warning("pub/sub command refused: %s", error)
            return
        slot = int(rest.split()[0])
        self._move([c for c in self._home if key_slot(c.encode()) == slot])

    def _down(self, addr: str) -> None:
        """A node's subscription cannot connect: its slots may have a new primary by now."""
        self._move([c for c, a in self._home.items() if a == addr], only_if_elsewhere=True)

    async def aclose(self) -> None:
        for task in list(self._moving):
            task.cancel()
        for node in self._nodes.values():
            await node.aclose()
