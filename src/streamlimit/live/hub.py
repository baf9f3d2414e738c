"""A worker's live channels: opening one (a heartbeat), the store's kicks and the batched
renewals turned into each channel's events, and closing them all when the worker stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any

from streamlimit.api.render import rfc3339, streams_body
from streamlimit.errors import ChannelsFull, StoreUnavailable, StreamNotActive
from streamlimit.grants.issuer import GrantIssuer
from streamlimit.live import events, sse
from streamlimit.live.channel import Channel, Key, View
from streamlimit.live.outbox import Outbox
from streamlimit.live.renewer import Renewer
from streamlimit.models import HeartbeatResult, Kick, Renewal
from streamlimit.service import Caller, StreamService, check_id, ended_error
from streamlimit.settings import Settings

log = logging.getLogger("streamlimit.live")


@dataclass(frozen=True, slots=True)
class LiveSettings:
    max_channels: int = 10_000  # per worker
    keepalive_s: float = 15.0
    retry_ms: int = 2_000  # EventSource's reconnection delay
    drain_retry_ms: int = 1_000  # at shutdown: players reconnect within this (spread evenly)

    @classmethod
    def from_settings(cls, s: Settings) -> LiveSettings:
        return cls(s.live_max_channels, s.live_keepalive_s, s.live_retry_ms)


class Hub:
    def __init__(
        self, service: StreamService, settings: LiveSettings, grants: GrantIssuer | None = None
    ) -> None:
        self.service, self.settings = service, settings
        self.grants = grants  # when set, every renewed event carries a new grant
        policy = service.policy
        self._channels: dict[Key, list[Channel]] = {}
        self._views: dict[str, list[View]] = {}  # user -> live views of their streams
        self._watched: dict[str, int] = {}  # user -> open channels of theirs
        self.open_count = 0
        self.draining = False
        self._feed = service.store.feed(self._kicked, self._gap)
        self.renewer = Renewer(
            service.store, policy.lease_ttl_ms, policy.heartbeat_interval_s, self._renewed, self._failed
        )
        self._now = asyncio.get_running_loop().time
        self._keepalives: asyncio.Task[None] | None = None
        self._relisting: set[asyncio.Task[None]] = set()

    async def open(self, user_id: str, stream_id: str, caller: Caller, instance: str) -> Channel:
        """A heartbeat, and the channel that renews from then on. The user's kicks are watched
        first, so that none published after the heartbeat is missed."""
        check_id("user_id", user_id)
        check_id("stream_id", stream_id)
        async with self._taking(user_id):
            beat = await self.service.heartbeat(
                user_id, stream_id, caller, with_limit=self.grants is not None
            )
        now = self._now()
        channel = Channel(beat.stream, instance, caller, now)
        self._channels.setdefault(channel.key, []).append(channel)
        channel.push(sse.retry(self.settings.retry_ms), now)
        self._opened(channel, beat)
        if self._keepalives is None:
            self._keepalives = asyncio.get_running_loop().create_task(self._keep_alive(), name="keepalives")
        return channel

    async def open_view(self, user_id: str, caller: Caller) -> View:
        """A live view of the user's streams: the list now, and again after each of the user's
        kicks (admissions and ends, as the store publishes them)."""
        check_id("user_id", user_id)
        async with self._taking(user_id):
            listing = await self.service.list(user_id, caller)
        view = View(user_id, caller, self._now())
        self._views.setdefault(user_id, []).append(view)
        view.push(
            sse.retry(self.settings.retry_ms) + sse.event("streams", streams_body(listing)), self._now()
        )
        if self._keepalives is None:
            self._keepalives = asyncio.get_running_loop().create_task(self._keep_alive(), name="keepalives")
        return view

    @contextlib.asynccontextmanager
    async def _taking(self, user_id: str) -> AsyncIterator[None]:
        """One of the worker's channels taken, and the user's kicks watched, for a channel or view
        about to open; both given back if it does not."""
        if self.draining or self.open_count >= self.settings.max_channels:
            raise ChannelsFull("this instance holds all the live channels it may; retry (maybe elsewhere)")
        self.open_count += 1
        await self._watch(user_id)
        try:
            yield
        except BaseException:
            self._unwatch(user_id)
            self.open_count -= 1
            raise

    def close_view(self, view: View) -> None:
        views = self._views.get(view.user_id)
        if views is None or view not in views:
            return
        views.remove(view)
        if not views:
            del self._views[view.user_id]
        self._unwatch(view.user_id)
        self.open_count -= 1

    def close(self, channel: Channel) -> None:
        """The channel's response is over: its lease is no longer renewed here (it ends within a
        lease TTL unless renewed elsewhere)."""
        open_ = self._channels.get(channel.key)
        if open_ is None or channel not in open_:
            return
        open_.remove(channel)
        if not open_:
            del self._channels[channel.key]
            self.renewer.discard(channel.key)
        self._unwatch(channel.stream.user_id)
        self.open_count -= 1

    def drain(self) -> None:
        """Shutting down: every channel told to reconnect (spread over drain_retry_ms, so that
        the players do not all come back at once), then closed; new ones refused."""
        self.draining = True
        now = self._now()
        for outbox in self._outboxes():
            delay = random.randint(0, self.settings.drain_retry_ms)  # noqa: S311
            outbox.push(sse.retry(delay) + sse.event("reconnect", {"retry_ms": delay}), now, last=True)

    def _outboxes(self) -> list[Outbox]:
        every: list[Outbox] = [c for channels in self._channels.values() for c in channels]
        return every + [v for views in self._views.values() for v in views]

    async def aclose(self) -> None:
        if self._keepalives is not None:
            self._keepalives.cancel()
        await self.renewer.close()
        await self._feed.close()

    async def _keep_alive(self) -> None:
        """A comment on every channel quiet for a keepalive interval: one sweep of all channels a
        few times per interval, instead of a timer per channel."""
        every_s = min(1.0, self.settings.keepalive_s / 4)
        quiet_s = self.settings.keepalive_s - every_s
        while True:
            await asyncio.sleep(every_s)
            now = self._now()
            for outbox in self._outboxes():
                if now - outbox.quiet_since >= quiet_s:
                    outbox.push(sse.KEEPALIVE, now)

    # -- kicks ---------------------------------------------------------------------------------

    async def _watch(self, user_id: str) -> None:
        n = self._watched.get(user_id, 0)
        self._watched[user_id] = n + 1
        if n == 0:
            try:
                await self._feed.watch(user_id)
            except StoreUnavailable as exc:  # the renewals will find what a kick would have said
                log.debug("live kicks of %s not confirmed: %s", user_id, exc)

    def _unwatch(self, user_id: str) -> None:
        n = self._watched.get(user_id, 0) - 1
        if n > 0:
            self._watched[user_id] = n
            return
        self._watched.pop(user_id, None)
        self._feed.unwatch(user_id)

    def _kicked(self, kick: Kick) -> None:
        for view in self._views.get(kick.user_id, ()):
            self._relist(view)
        for ended in kick.ended():
            for channel in list(self._channels.get((kick.user_id, ended.stream_id), ())):
                self._end(channel, ended_error(kick.user_id, ended.stream_id, ended))

    def _gap(self) -> None:
        self.renewer.catch_up()
        for views in self._views.values():
            for view in views:
                self._relist(view)

    def _relist(self, view: View) -> None:
        """The user's list again, once at a time per view (a kick during it: once more after)."""
        if view.listing:
            view.stale = True
            return
        view.listing = True

        async def relist() -> None:
            try:
                while True:
                    view.stale = False
                    try:
                        listing = await self.service.list(view.user_id, view.caller)
                    except StoreUnavailable:
                        view.push(
                            sse.event("degraded", {"user_id": view.user_id, "degraded": True}), self._now()
                        )
                        return
                    view.push(sse.event("streams", streams_body(listing)), self._now())
                    if not view.stale:
                        return
            finally:
                view.listing = False

        self._spawn(relist())

    # -- renewals ------------------------------------------------------------------------------

    def _renewed(self, keys: Sequence[Key], renewals: Sequence[Renewal]) -> None:
        now = self._now()
        for key, r in zip(keys, renewals, strict=True):
            opened_degraded = any(c.stream.epoch is None for c in self._channels.get(key, ()))
            if (r.expires_at_ms is None and r.ended is None) or (r.expires_at_ms and opened_degraded):
                # gone without a tombstone, or known only from a degraded answer: a heartbeat
                self._spawn(self._readmit(key))
                continue
            for channel in list(self._channels.get(key, ())):
                if r.expires_at_ms is not None:
                    channel.expires_ms = r.expires_at_ms
                    head, tail = channel.renewed
                    frame = head + rfc3339(r.expires_at_ms).encode() + tail
                    if self.grants is not None:
                        frame = events.with_grant(frame, self._grant(channel))
                    channel.push(frame, now)
                else:
                    self._end(channel, ended_error(*key, r.ended))

    async def _readmit(self, key: Key) -> None:
        """A lease the store no longer holds, that nobody ended (a store that lost its data, a
        channel opened degraded during an outage): a heartbeat admits it again when a slot is free,
        as it would a heartbeating player's; else the channel is told ``lost``."""
        channels = self._channels.get(key)
        if not channels:
            return
        try:
            beat = await self.service.heartbeat(*key, channels[0].caller, with_limit=self.grants is not None)
        except StreamNotActive as exc:
            for channel in list(self._channels.get(key, ())):
                self._end(channel, exc)
            return
        except StoreUnavailable as exc:
            self._failed([key], exc)
            return
        for channel in self._channels.get(key, ()):
            self._opened(channel, beat)

    def _failed(self, keys: Sequence[Key], exc: StoreUnavailable) -> None:
        allow = self.service.policy.on_store_error == "allow"
        what = "degraded" if allow else "failing"
        self.service.outage_log.warn(
            f"live renewals {what}, on_store_error={'allow' if allow else 'deny'}", exc
        )
        now = self._now()
        for key in keys:
            for channel in self._channels.get(key, ()):
                channel.push(events.degraded(channel, self.service.policy), now)

    def _opened(self, channel: Channel, beat: HeartbeatResult) -> None:
        """A heartbeat's answer (the channel's opening, a re-admission) as the channel's event; the
        lease is renewed from then on (one opened degraded too: its first renewal finds it gone
        and admits it again once the store is back)."""
        channel.stream, channel.expires_ms = beat.stream, beat.stream.expires_at_ms
        channel.limit = beat.limit  # the grants' lim, as of this heartbeat
        grant = self.grants.grant(beat.stream, beat.limit, beat.degraded) if self.grants else None
        if beat.degraded:
            channel.push(events.degraded(channel, self.service.policy, grant), self._now())
        else:
            opened = events.lease(channel, self.service.policy, beat.readmitted)
            frame = sse.event("renewed", opened if grant is None else {**opened, "grant": grant})
            channel.push(frame, self._now())
            channel.renewed = events.renewed_template(channel, self.service.policy)
        self.renewer.add(channel.key)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._relisting.add(task)
        task.add_done_callback(self._relisting.discard)

    def _grant(self, channel: Channel) -> str | None:
        assert self.grants is not None
        lease = replace(channel.stream, expires_at_ms=channel.expires_ms)
        return self.grants.grant(lease, channel.limit)

    def _end(self, channel: Channel, exc: StreamNotActive) -> None:
        channel.push(events.ended(channel, exc), self._now(), last=True)
