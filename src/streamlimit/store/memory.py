"""In-process store with the Redis store's semantics; one process only. Takes an injected clock."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from streamlimit.models import (
    NO_ACTOR,
    Actor,
    Beat,
    Ended,
    EndReason,
    Event,
    LimitInfo,
    Limits,
    Start,
    StartResult,
    StartStatus,
    StoppedAll,
    StopResult,
    Stream,
    UserStreams,
)

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


def by_admission(s: Stream) -> tuple[int, str]:
    """Oldest first: by epoch (admission order), then id, as lua/_prelude.lua's ``older``."""
    return (s.epoch if s.epoch is not None else s.started_at_ms * 1000), s.stream_id


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

    def __init__(self, clock: Clock = system_clock_ms) -> None:
        self._clock = clock
        self._users: dict[str, _User] = {}
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
            spent = max(u.budget_tat_us, u.stops_tat_us) > now * 1000
            if idle and not spent and u.epoch < (now - 1000) * 1000:
                del self._users[user_id]
        self._sweep_at = max(1024, 2 * len(self._users))

    def users_held(self) -> int:
        """How many users this store keeps records for (idle ones are forgotten over time)."""
        return len(self._users)

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

    @staticmethod
    def _record(u: _User, event: Event) -> None:
        u.events.insert(0, event)
        del u.events[EVENTS_KEPT:]

    @staticmethod
    def _admit(
        u: _User, user_id: str, stream_id: str, device: str | None, end: int, now: int, legacy: bool
    ) -> Stream:
        u.epoch = max(u.epoch + 1, now * 1000)
        lease = Stream(user_id, stream_id, device, now, end, u.epoch, legacy)
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

        def answer(status: StartStatus, stream: Stream | None = None, **extra: Any) -> StartResult:
            return StartResult(
                status, stream, len(u.leases), info.limit, limit_source=info.source, plan=info.plan,
                **extra,
            )  # fmt: skip

        old = u.leases.get(stream_id)
        if old is not None:
            renewed = replace(old, expires_at_ms=max(old.expires_at_ms, now + ttl_ms))
            u.leases[stream_id] = renewed
            return answer(StartStatus.RENEWED, renewed)
        active = self._sorted(u.leases)
        if len(active) >= info.limit and (not how.evict_oldest or info.limit == 0):
            return answer(StartStatus.REFUSED, streams=active)
        victims = active[: max(0, len(active) - info.limit + 1)]
        wait, tat = _budget(u.budget_tat_us, now, how.starts_per_min)
        if wait:
            return answer(StartStatus.TOO_MANY, retry_after_ms=wait)
        if tat is not None:
            u.budget_tat_us = tat
        stream = self._admit(u, user_id, stream_id, device, now + ttl_ms, now, how.legacy)
        for victim in victims:
            self._bury(u, victim, Ended(victim.stream_id, now, EndReason.EVICTED, stream_id), now + ttl_ms)
            self._record(u, Event(now, "evicted", how.actor, (victim.stream_id,)))
        return answer(StartStatus.ADMITTED, stream, evicted=victims)

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
        if len(u.leases) >= self._limit(user_id, u, limits).limit:
            return Beat()
        return Beat(self._admit(u, user_id, stream_id, None, now + ttl_ms, now, False), readmitted=True)

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
                self._record(u, Event(now, "stopped_by_admin", actor, (removed.stream_id,)))
        return StopResult(removed, len(u.leases), at_ms=now)

    async def list(self, user_id: str, limits: Limits) -> UserStreams:
        u = self._user(user_id, self._clock())
        info = self._limit(user_id, u, limits)
        return UserStreams(user_id, info.limit, info.source, self._sorted(u.leases), info.plan)

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
            self._record(u, Event(now, "stopped_all", actor, ids))
        return StoppedAll(now, ids)

    async def get_limit(self, user_id: str, limits: Limits) -> LimitInfo:
        return self._limit(user_id, self._user(user_id, self._clock()), limits)

    async def set_limit(
        self, user_id: str, limit: int | None, limits: Limits, actor: Actor = NO_ACTOR
    ) -> LimitInfo:
        now = self._clock()
        u = self._user(user_id, now)
        u.limit = limit
        if limit is None:
            self._record(u, Event(now, "limit_cleared", actor))
        else:
            self._record(u, Event(now, "limit_set", actor, value=str(limit)))
        return self._limit(user_id, u, limits)

    async def set_plan(
        self, user_id: str, plan: str | None, limits: Limits, actor: Actor = NO_ACTOR
    ) -> LimitInfo:
        now = self._clock()
        u = self._user(user_id, now)
        u.plan = plan
        self._record(
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
