"""In-process store with the Redis store's semantics; one process only. Takes an injected clock."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from streamlimit.models import (
    NO_ACTOR,
    Actor,
    Beat,
    Ended,
    EndReason,
    Event,
    Kick,
    LimitInfo,
    Limits,
    Renewal,
    Start,
    StartResult,
    StartStatus,
    StoppedAll,
    StopResult,
    Stream,
    UserStreams,
)
from streamlimit.store.hooks import QUEUED_ACTIONS, REACHED_EVERY_MS, MemoryHookQueue, event_json
from streamlimit.store.memory_feed import MemoryFeed, MemoryFeeds, OnKick

Clock = Callable[[], int]  # returns now in milliseconds
EVENTS_KEPT = 100
EVENTS_TTL_MS = 30 * 86_400_000  # like the events key's expiry (lua/_prelude.lua)


def system_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class FakeClock:
    """A clock that moves only when told to: ``clock.advance(ms)``."""

    now_ms: int = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@dataclass
class _User:
    leases: dict[str, Stream] = field(default_factory=dict)
    epoch: int = 0
    limit: int | None = None  # override
    plan: str | None = None  # set by an admin
    ended: dict[str, tuple[Ended, int]] = field(default_factory=dict)  # tombstone, until (ms)
    events: list[Event] = field(default_factory=list)  # newest first
    budget_tat_us: int = 0  # GCRA theoretical arrival time of the start budget
    stops_tat_us: int = 0  # ... and of the stop-all budget
    reached_until: int = -1  # no limit_reached webhook until then (ms)


def by_admission(s: Stream) -> tuple[int, str]:
    """Oldest first: by epoch (admission order), then id, as lua/_prelude.lua's ``older``."""
    return (s.epoch if s.epoch is not None else s.started_at_ms * 1000), s.stream_id


def _need(active: tuple[Stream, ...], gone: dict[str, EndReason], limits: Limits, new_slot: str) -> int:
    """What the limit counts once a new stream (counted as ``new_slot``) is in and ``gone`` out."""
    left = [s for s in active if s.stream_id not in gone]
    shared = limits.by_device and any(s.slot == new_slot for s in left)
    return limits.count(left) + (0 if shared else 1)


def _evict_oldest(
    active: tuple[Stream, ...], gone: dict[str, EndReason], limits: Limits, new_slot: str, limit: int
) -> None:
    """Evict the oldest streams (when devices are counted, whole devices, never the new stream's
    own) until the new one fits, as lua/start.lua."""
    for s in active:
        if _need(active, gone, limits, new_slot) <= limit:
            return
        if s.stream_id in gone or (limits.by_device and s.slot == new_slot):
            continue
        for t in active:
            if t.stream_id == s.stream_id or (limits.by_device and t.slot == s.slot):
                gone[t.stream_id] = EndReason.EVICTED


def _budget(tat_us: int, now: int, per_min: int) -> tuple[int, int | None]:
    """The ms to wait (0: allowed) and the new theoretical arrival time, as lua/_prelude.lua's
    ``budget``: integer microseconds, a burst of exactly ``per_min``, then one every period (60 s
    / per_min, rounded down to the microsecond)."""
    if per_min <= 0:
        return 0, None
    now_us, period = now * 1000, 60_000_000 // per_min
    tat = max(tat_us, now_us)
    wait = tat - now_us - (per_min - 1) * period
    if wait > 0:
        return math.ceil(wait / 1000), None
    return 0, tat + period


class MemoryStore:
    """Methods never await, so each one is atomic on the event loop, like a Lua script."""

    def __init__(self, clock: Clock = system_clock_ms, hooks: MemoryHookQueue | None = None) -> None:
        self._clock = clock
        self.hooks = hooks  # the webhook queue; None: webhooks off
        self._users: dict[str, _User] = {}
        self._feeds = MemoryFeeds()  # the live channels' kicks (lua/_prelude.lua's ``kick``)
        self._sweep_at = 1024  # forget idle users when this many are held (see _sweep)

    def _user(self, user_id: str, now: int) -> _User:
        u = self._users.get(user_id)
        if u is None:
            if len(self._users) >= self._sweep_at:
                self._sweep(now)
            u = self._users[user_id] = _User()
        self._expire(u, now)
        return u

    @staticmethod
    def _expire(u: _User, now: int) -> None:
        """What the Redis store's key and member expiry would have removed by ``now``."""
        for sid in [s for s, lease in u.leases.items() if lease.expires_at_ms <= now]:
            del u.leases[sid]
        for sid in [s for s, (_, until) in u.ended.items() if until <= now]:
            del u.ended[sid]
        # a key expiring at T is still there at T (Redis drops it once now > T)
        if u.events and u.events[0].at_ms + EVENTS_TTL_MS < now:
            u.events.clear()

    def _sweep(self, now: int) -> None:
        """Forget users that hold nothing, as Redis forgets their expired keys: every user ever
        looked up would otherwise stay in memory. Runs when the number held doubles since the
        last sweep, so its cost per call stays constant."""
        for user_id, u in list(self._users.items()):
            self._expire(u, now)
            idle = not (u.leases or u.ended or u.events) and u.limit is None and u.plan is None
            # the epoch is kept a second past its last use, as Redis keeps '#epoch': a new one
            # is at least now * 1000 (lua/_prelude.lua), so it still grows once forgotten
            spent = max(u.budget_tat_us, u.stops_tat_us) > now * 1000 or u.reached_until >= now
            if idle and not spent and u.epoch < (now - 1000) * 1000:
                del self._users[user_id]
        self._sweep_at = max(1024, 2 * len(self._users))

    def users_held(self) -> int:
        """How many users this store keeps records for (idle ones are forgotten over time)."""
        return len(self._users)

    def _notify(self, user_id: str, event: Event, active: int | None = None) -> None:
        """Queue a webhook event, as lua/_prelude.lua's ``notify`` (the audit event's JSON)."""
        if self.hooks is not None:
            self.hooks.add(event.at_ms, user_id, event_json(event, active))

    @staticmethod
    def _limit(user_id: str, u: _User, limits: Limits) -> LimitInfo:
        if u.limit is not None:
            return LimitInfo(user_id, u.limit, "user", u.plan)
        table = dict(limits.plans)
        for plan in (u.plan, limits.plan_hint):
            if plan and plan in table:
                return LimitInfo(user_id, table[plan], "plan", plan)
        return LimitInfo(user_id, limits.default, "default")

    @staticmethod
    def _sorted(leases: dict[str, Stream]) -> tuple[Stream, ...]:
        return tuple(sorted(leases.values(), key=by_admission))

    def _record(self, user_id: str, u: _User, event: Event) -> None:
        u.events.insert(0, event)
        del u.events[EVENTS_KEPT:]
        if event.action in QUEUED_ACTIONS:
            self._notify(user_id, event)

    @staticmethod
    def _admit(
        u: _User,
        user_id: str,
        stream_id: str,
        device: str | None,
        end: int,
        now: int,
        legacy: bool,
        device_id: str | None = None,
    ) -> Stream:
        u.epoch = max(u.epoch + 1, now * 1000)
        lease = Stream(user_id, stream_id, device, now, end, u.epoch, legacy, device_id)
        u.leases[stream_id] = lease
        u.ended.pop(stream_id, None)
        return lease

    @staticmethod
    def _bury(u: _User, lease: Stream, ended: Ended, until: int) -> None:
        """End a lease; a v1 one leaves a tombstone until ``until`` (a legacy one, which nothing
        heartbeats, none), as lua/_prelude.lua's ``bury``."""
        u.leases.pop(lease.stream_id, None)
        if not lease.legacy:
            u.ended[lease.stream_id] = (ended, until)

    async def start(
        self, user_id: str, stream_id: str, device: str | None, ttl_ms: int, limits: Limits, how: Start
    ) -> StartResult:
        now = self._clock()
        u = self._user(user_id, now)
        info = self._limit(user_id, u, limits)

        def answer(status: StartStatus, stream: Stream | None, active: int, **extra: Any) -> StartResult:
            return StartResult(
                status, stream, active, info.limit, limit_source=info.source, plan=info.plan, **extra
            )

        old = u.leases.get(stream_id)
        active = self._sorted(u.leases)
        count = limits.count(active)
        if old is not None:
            renewed = replace(old, expires_at_ms=max(old.expires_at_ms, now + ttl_ms))
            u.leases[stream_id] = renewed
            return answer(StartStatus.RENEWED, renewed, count)
        gone = self._replaced(u, active, limits, how)
        if gone is None:
            return answer(StartStatus.TARGET_NOT_ACTIVE, None, count)
        new_slot = Stream(user_id, stream_id, None, 0, 0, device_id=how.device_id).slot
        if _need(active, gone, limits, new_slot) > info.limit:
            if not how.evict_oldest or info.limit == 0:
                if self.hooks is not None and u.reached_until < now:
                    u.reached_until = now + REACHED_EVERY_MS
                    refusal = Event(
                        now, "limit_reached", how.actor, (stream_id,), str(info.limit), how.device_id
                    )
                    self._notify(user_id, refusal, count)
                return answer(StartStatus.REFUSED, None, count, streams=active)
            _evict_oldest(active, gone, limits, new_slot, info.limit)
        wait, tat = _budget(u.budget_tat_us, now, how.starts_per_min)
        if wait:
            return answer(StartStatus.TOO_MANY, None, count, retry_after_ms=wait)
        if tat is not None:
            u.budget_tat_us = tat
        stream = self._admit(u, user_id, stream_id, device, now + ttl_ms, now, how.legacy, how.device_id)
        evicted = tuple(s for s in active if gone.get(s.stream_id) is EndReason.EVICTED)
        replaced = tuple(s for s in active if gone.get(s.stream_id) is EndReason.REPLACED)
        for victim in evicted:
            self._bury(u, victim, Ended(victim.stream_id, now, EndReason.EVICTED, stream_id), now + ttl_ms)
            self._record(user_id, u, Event(now, "evicted", how.actor, (victim.stream_id,), stream_id))
        for old_one in replaced:
            self._bury(u, old_one, Ended(old_one.stream_id, now, EndReason.REPLACED, stream_id), now + ttl_ms)
            event = Event(now, "replaced", how.actor, (old_one.stream_id,), stream_id, how.device_id)
            self._record(user_id, u, event)
        for reason, gone_ones in ((EndReason.EVICTED, evicted), (EndReason.REPLACED, replaced)):
            ids = tuple(s.stream_id for s in gone_ones)
            self._feeds.publish(Kick(user_id, now, reason, ids, stream_id))
        self._feeds.publish(Kick(user_id, now, None, (stream_id,)))
        after = limits.count(self._sorted(u.leases))
        return answer(StartStatus.ADMITTED, stream, after, evicted=evicted, replaced=replaced)

    @staticmethod
    def _replaced(
        u: _User, active: tuple[Stream, ...], limits: Limits, how: Start
    ) -> dict[str, EndReason] | None:
        """The streams a start ends before the limit applies: the one it names to replace (when
        devices are counted, every stream of that one's device, unless it is the start's own),
        and the device's own oldest beyond its per-device number; None when the named one is not
        active."""
        gone: dict[str, EndReason] = {}
        if how.replace is not None:
            target = u.leases.get(how.replace)
            if target is None:
                return None
            own_device = how.device_id is not None and target.device_id == how.device_id
            whole = limits.by_device and not own_device  # all of another device
            for s in active:
                if s.stream_id == target.stream_id or (whole and s.slot == target.slot):
                    gone[s.stream_id] = EndReason.EVICTED
        if how.device_id is not None:
            mine = [s for s in active if s.device_id == how.device_id and s.stream_id not in gone]
            for s in mine[: max(0, len(mine) - limits.per_device + 1)]:
                gone[s.stream_id] = EndReason.REPLACED
        return gone

    async def heartbeat(self, user_id: str, stream_id: str, ttl_ms: int, limits: Limits) -> Beat:
        now = self._clock()
        u = self._user(user_id, now)
        old = u.leases.get(stream_id)
        if old is not None:
            u.leases[stream_id] = replace(old, expires_at_ms=max(old.expires_at_ms, now + ttl_ms))
            return Beat(u.leases[stream_id])
        if stream_id in u.ended:  # told so, and kept a lease TTL more (lua/heartbeat.lua)
            ended, until = u.ended[stream_id]
            u.ended[stream_id] = (ended, max(until, now + ttl_ms))
            return Beat(ended=ended)
        if limits.count(tuple(u.leases.values())) >= self._limit(user_id, u, limits).limit:
            return Beat()
        lease = self._admit(u, user_id, stream_id, None, now + ttl_ms, now, False)
        self._feeds.publish(Kick(user_id, now, None, (stream_id,)))
        return Beat(lease, readmitted=True)

    async def stop(
        self, user_id: str, stream_id: str | None, ttl_ms: int, actor: Actor = NO_ACTOR, audit: bool = False
    ) -> StopResult:
        now = self._clock()
        u = self._user(user_id, now)
        if stream_id is None:
            stream_id = next((s.stream_id for s in self._sorted(u.leases) if s.legacy), None)
        removed = u.leases.pop(stream_id, None) if stream_id is not None else None
        if removed is not None:
            reason = EndReason.STOPPED_BY_ADMIN if audit else EndReason.STOPPED
            self._bury(u, removed, Ended(removed.stream_id, now, reason), now + ttl_ms)
            if audit:
                self._record(user_id, u, Event(now, "stopped_by_admin", actor, (removed.stream_id,)))
            self._feeds.publish(Kick(user_id, now, reason, (removed.stream_id,)))
        return StopResult(removed, len(u.leases), at_ms=now)

    async def list(self, user_id: str, limits: Limits) -> UserStreams:
        u = self._user(user_id, self._clock())
        info = self._limit(user_id, u, limits)
        return UserStreams(user_id, info.limit, info.source, self._sorted(u.leases), info.plan, limits.counts)

    async def stop_all(
        self, user_id: str, ttl_ms: int, actor: Actor = NO_ACTOR, per_min: int = 0
    ) -> StoppedAll:
        now = self._clock()
        u = self._user(user_id, now)
        wait, tat = _budget(u.stops_tat_us, now, per_min)
        if wait:
            return StoppedAll(now, retry_after_ms=wait)
        if tat is not None:
            u.stops_tat_us = tat
        stopped = self._sorted(u.leases)
        ids = tuple(s.stream_id for s in stopped)
        for lease in stopped:
            self._bury(u, lease, Ended(lease.stream_id, now, EndReason.STOPPED_ALL), now + ttl_ms)
        if ids:
            self._record(user_id, u, Event(now, "stopped_all", actor, ids))
        self._feeds.publish(Kick(user_id, now, EndReason.STOPPED_ALL, ids))
        return StoppedAll(now, ids)

    async def renew(self, leases: Sequence[tuple[str, str]], ttl_ms: int) -> tuple[Renewal, ...]:
        now = self._clock()
        out = []
        for user_id, stream_id in leases:
            u = self._user(user_id, now)
            old = u.leases.get(stream_id)
            if old is not None:
                u.leases[stream_id] = replace(old, expires_at_ms=max(old.expires_at_ms, now + ttl_ms))
                out.append(Renewal(u.leases[stream_id].expires_at_ms))
            else:
                ended = u.ended.get(stream_id)
                out.append(Renewal(ended=ended[0]) if ended is not None else Renewal())
        return tuple(out)

    def feed(self, on_kick: OnKick, on_gap: Callable[[], None]) -> MemoryFeed:
        """Kicks in the process: none is ever missed, so ``on_gap`` is never called."""
        return self._feeds.open(on_kick)

    async def get_limit(self, user_id: str, limits: Limits) -> LimitInfo:
        return self._limit(user_id, self._user(user_id, self._clock()), limits)

    async def set_limit(
        self, user_id: str, limit: int | None, limits: Limits, actor: Actor = NO_ACTOR
    ) -> LimitInfo:
        now = self._clock()
        u = self._user(user_id, now)
        u.limit = limit
        if limit is None:
            self._record(user_id, u, Event(now, "limit_cleared", actor))
        else:
            self._record(user_id, u, Event(now, "limit_set", actor, value=str(limit)))
        return self._limit(user_id, u, limits)

    async def set_plan(
        self, user_id: str, plan: str | None, limits: Limits, actor: Actor = NO_ACTOR
    ) -> LimitInfo:
        now = self._clock()
        u = self._user(user_id, now)
        u.plan = plan
        self._record(
            user_id,
            u,
            Event(now, "plan_cleared", actor) if plan is None else Event(now, "plan_set", actor, value=plan),
        )
        return self._limit(user_id, u, limits)

    async def events(self, user_id: str) -> tuple[Event, ...]:
        return tuple(self._user(user_id, self._clock()).events)

    async def estimate_active(self) -> int:
        now = self._clock()
        return sum(1 for u in self._users.values() for s in u.leases.values() if s.expires_at_ms > now)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
