"""A pure model of every lease rule, written from the rules, not from any store.

The rules: a user's limit comes from its override, else its plan (an admin's, then the caller's
token's), else the default. A start renews an active stream, else admits it into a free slot, else
(when asked to evict) evicts the oldest, as many as it takes for the user to end at the limit,
each leaving a tombstone and an event, else is refused. Admissions spend the per-minute start
budget (GCRA, integer microseconds: a burst of exactly N, then one every 60 s / N); stop-alls
spend a budget of their own. Every admission gets its own epoch, above every earlier one of the
user, and "oldest" means the lowest epoch. A heartbeat renews an active lease, answers a stream's
tombstone while it lasts (evicted, stopped, stopped by stop-all or an admin; met by a heartbeat, a
tombstone lasts a lease more), or else admits the stream again into a free slot (no budget). A
stop removes the given stream, or (compat) the oldest legacy one, never a v1 one. Stop-all removes
every lease. Evictions, stops by an admin, stop-alls that stopped something, and limit and plan
changes (with the new value) are recorded as events, with who did them (name, role, credential,
request id, client address).

Devices: a start may carry its player's device id. Its own older streams beyond the per-device
number (``per_device``) are replaced in the same step (a tombstone "replaced", an event), and a
start may name one stream to replace ("watch here instead of there": when devices are counted,
every stream of that stream's device, unless it is the start's own), which is evicted whether or
not the user is at the limit, or the start is refused as "target not active" and nothing happens.
The limit counts streams, or (counts = devices) distinct devices, a stream without a device id
being a device of its own; the streams a start replaces or names free their slots first, then the
limit applies as always (evicting the oldest streams, or whole devices but never the start's own,
when asked): a user over a lowered limit is refused even a swap.

Live channels: every call that ends streams (an eviction, a replacement, a stop of any kind,
a stop-all that stopped something) pushes one kick per reason to the user's live channels: which
streams, why, when, and the stream that took their place; then each admission (a start's, a
heartbeat's again) pushes one too, without a reason. A batch renewal extends each active
lease as a heartbeat would, and answers for one that is not active with its tombstone (or
nothing); it never admits a stream again and never touches a tombstone.

Webhooks: every recorded event but an admin's stop is queued for delivery (when webhooks are on),
and so is a refusal ("limit_reached"), at most once per user per minute.

Every operation takes the store's "now" (ms) explicitly and answers with the same value types the
stores answer with, so a reply can be compared with ``==``. Nothing is ever purged: a lease is
active while ``expires_at_ms > now``, a tombstone lasts while its end is after now, and a record
that is not active is simply ignored. So the model's state never depends on *when* an operation
looked at it, only on what the operation changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from streamlimit.models import (
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

EVENTS_KEPT = 100
EVENTS_TTL_MS = 30 * 86_400_000
REACHED_EVERY_MS = 60_000
UNQUEUED = frozenset({"stopped_by_admin"})  # recorded, but no webhook


@dataclass(frozen=True)
class Hook:
    """A queued webhook event: whose, and the event (its time aside: see test_model's checks)."""

    user: str
    event: Event
    active: int | None = None  # limit_reached: what the limit counted


@dataclass
class Model:
    leases: dict[tuple[str, str], Stream] = field(default_factory=dict)  # (user, stream) -> lease
    limits: dict[str, int] = field(default_factory=dict)  # per-user overrides
    plans: dict[str, str] = field(default_factory=dict)  # plans set by an admin
    epochs: dict[str, int] = field(default_factory=dict)  # the last admission's epoch per user
    ended: dict[tuple[str, str], tuple[Ended, int]] = field(default_factory=dict)  # tombstone, until
    events: dict[str, list[Event]] = field(default_factory=dict)  # newest first
    budgets: dict[str, int] = field(default_factory=dict)  # GCRA theoretical arrival time (us)
    stop_budgets: dict[str, int] = field(default_factory=dict)  # ... of the stop-all budget
    hooks: list[Hook] | None = None  # the webhook queue, oldest first; None: webhooks off
    reached: dict[str, int] = field(default_factory=dict)  # no limit_reached hook until (ms)
    kicks: list[Kick] = field(default_factory=list)  # pushed to the live channels, oldest first

    def copy(self) -> Model:
        return Model(
            dict(self.leases),
            dict(self.limits),
            dict(self.plans),
            dict(self.epochs),
            dict(self.ended),
            {u: list(e) for u, e in self.events.items()},
            dict(self.budgets),
            dict(self.stop_budgets),
            None if self.hooks is None else list(self.hooks),
            dict(self.reached),
            list(self.kicks),
        )

    # -- reading -------------------------------------------------------------------------------

    def limit_info(self, user: str, limits: Limits) -> LimitInfo:
        plan = self.plans.get(user)
        if user in self.limits:
            return LimitInfo(user, self.limits[user], "user", plan)
        table = dict(limits.plans)
        for name in (plan, limits.plan_hint):
            if name and name in table:
                return LimitInfo(user, table[name], "plan", name)
        return LimitInfo(user, limits.default, "default")

    def active(self, user: str, now: int) -> tuple[Stream, ...]:
        """The user's active leases, oldest first: by admission (epoch; unique per user)."""
        alive = [s for (u, _), s in self.leases.items() if u == user and s.expires_at_ms > now]
        return tuple(sorted(alive, key=lambda s: s.epoch or 0))

    def lease(self, user: str, stream_id: str, now: int) -> Stream | None:
        s = self.leases.get((user, stream_id))
        return s if s is not None and s.expires_at_ms > now else None

    def tombstone(self, user: str, stream_id: str, now: int) -> Ended | None:
        found = self.ended.get((user, stream_id))
        return found[0] if found is not None and found[1] > now else None

    def expiries(self, user: str) -> set[int]:
        """Every instant at which one of the user's leases or tombstones stops being active."""
        ends = {s.expires_at_ms for (u, _), s in self.leases.items() if u == user}
        return ends | {until for (u, _), (_, until) in self.ended.items() if u == user}

    def user_events(self, user: str, now: int) -> tuple[Event, ...]:
        found = self.events.get(user, [])
        # the list expires 30 days after its newest event (a key is still there at its expiry)
        return tuple(found) if found and found[0].at_ms + EVENTS_TTL_MS >= now else ()

    # -- what operations change ----------------------------------------------------------------

    def _record(self, user: str, event: Event, now: int) -> None:
        self.events[user] = [event, *self.user_events(user, now)][:EVENTS_KEPT]
        if self.hooks is not None and event.action not in UNQUEUED:
            self.hooks.append(Hook(user, event))

    def _reached(self, user: str, event: Event, active: int, now: int) -> None:
        """A refusal: queued when webhooks are on, at most once a minute per user."""
        if self.hooks is not None and self.reached.get(user, -1) < now:
            self.reached[user] = now + REACHED_EVERY_MS
            self.hooks.append(Hook(user, event, active))

    def _admit(
        self,
        user: str,
        sid: str,
        device: str | None,
        end: int,
        now: int,
        legacy: bool,
        device_id: str | None = None,
    ) -> Stream:
        epoch = max(self.epochs.get(user, 0) + 1, now * 1000)
        self.epochs[user] = epoch
        new = Stream(user, sid, device, now, end, epoch, legacy, device_id)
        self.leases[(user, sid)] = new
        self.ended.pop((user, sid), None)
        return new

    def _kick(
        self, user: str, now: int, reason: EndReason | None, ids: tuple[str, ...], by: str | None = None
    ) -> None:
        if ids:
            self.kicks.append(Kick(user, now, reason, ids, by))

    def _end(self, user: str, sid: str, ended: Ended, until: int) -> None:
        """A lease ends; a v1 one leaves a tombstone (nothing heartbeats a legacy one)."""
        if not self.leases.pop((user, sid)).legacy:
            self.ended[(user, sid)] = (ended, until)

    @staticmethod
    def _spend(budgets: dict[str, int], user: str, now: int, per_min: int) -> int:
        """A budget (starts, stop-alls): the ms to wait, or 0 after spending one."""
        if per_min <= 0:
            return 0
        period = 60_000_000 // per_min
        tat = max(budgets.get(user, 0), now * 1000)
        wait = tat - now * 1000 - (per_min - 1) * period  # a burst of exactly per_min
        if wait > 0:
            return math.ceil(wait / 1000)
        budgets[user] = tat + period
        return 0

    # -- the operations ------------------------------------------------------------------------

    def start(
        self,
        user: str,
        stream_id: str,
        device: str | None,
        ttl_ms: int,
        limits: Limits,
        how: Start,
        now: int,
    ) -> StartResult:
        info = self.limit_info(user, limits)
        active = self.active(user, now)

        def answer(status: StartStatus, lease: Stream | None, count: int, **extra: object) -> StartResult:
            return StartResult(
                status,
                lease,
                count,
                info.limit,
                limit_source=info.source,
                plan=info.plan,
                **extra,  # type: ignore[arg-type]
            )

        old = self.lease(user, stream_id, now)
        count = limits.count(active)
        if old is not None:  # a retry: renew, keep started_at, device and epoch, never count twice
            renewed = replace(old, expires_at_ms=max(old.expires_at_ms, now + ttl_ms))
            self.leases[(user, stream_id)] = renewed
            return answer(StartStatus.RENEWED, renewed, count)
        gone: dict[str, EndReason] = {}
        if how.replace is not None:  # "watch here instead of there": that stream (or device)
            target = self.lease(user, how.replace, now)
            if target is None:
                return answer(StartStatus.TARGET_NOT_ACTIVE, None, count)
            own_device = how.device_id is not None and target.device_id == how.device_id
            for s in active:  # when devices are counted, all of another device
                if s.stream_id == target.stream_id or (
                    limits.by_device and not own_device and s.slot == target.slot
                ):
                    gone[s.stream_id] = EndReason.EVICTED
        if how.device_id is not None:  # the device's own oldest, beyond its per-device number
            mine = [s for s in active if s.device_id == how.device_id and s.stream_id not in gone]
            for s in mine[: max(0, len(mine) - limits.per_device + 1)]:
                gone[s.stream_id] = EndReason.REPLACED
        new_slot = Stream(user, stream_id, None, 0, 0, device_id=how.device_id).slot

        def need() -> int:  # what the limit counts once the new stream is in
            left = [s for s in active if s.stream_id not in gone]
            shared = limits.by_device and any(s.slot == new_slot for s in left)
            return limits.count(left) + (0 if shared else 1)

        if need() > info.limit:
            if not how.evict_oldest or info.limit == 0:
                self._reached(user, Event(now, "limit_reached", how.actor, (stream_id,), str(info.limit),
                                          how.device_id), count, now)  # fmt: skip
                return answer(StartStatus.REFUSED, None, count, streams=active)
            for s in active:  # the oldest first: streams, or whole devices but never the new one's
                if need() <= info.limit:
                    break
                if s.stream_id in gone or (limits.by_device and s.slot == new_slot):
                    continue
                for t in active:
                    if t.stream_id == s.stream_id or (limits.by_device and t.slot == s.slot):
                        gone[t.stream_id] = EndReason.EVICTED
        wait = self._spend(self.budgets, user, now, how.starts_per_min)
        if wait:
            return answer(StartStatus.TOO_MANY, None, count, retry_after_ms=wait)
        new = self._admit(user, stream_id, device, now + ttl_ms, now, how.legacy, how.device_id)
        evicted = tuple(s for s in active if gone.get(s.stream_id) is EndReason.EVICTED)
        replaced = tuple(s for s in active if gone.get(s.stream_id) is EndReason.REPLACED)
        for v in evicted:
            self._end(user, v.stream_id, Ended(v.stream_id, now, EndReason.EVICTED, stream_id), now + ttl_ms)
            self._record(user, Event(now, "evicted", how.actor, (v.stream_id,), stream_id), now)
        for v in replaced:
            self._end(user, v.stream_id, Ended(v.stream_id, now, EndReason.REPLACED, stream_id), now + ttl_ms)
            event = Event(now, "replaced", how.actor, (v.stream_id,), stream_id, how.device_id)
            self._record(user, event, now)
        self._kick(user, now, EndReason.EVICTED, tuple(v.stream_id for v in evicted), stream_id)
        self._kick(user, now, EndReason.REPLACED, tuple(v.stream_id for v in replaced), stream_id)
        self._kick(user, now, None, (stream_id,))  # admitted
        after = limits.count(self.active(user, now))
        return answer(StartStatus.ADMITTED, new, after, evicted=evicted, replaced=replaced)

    def heartbeat(self, user: str, stream_id: str, ttl_ms: int, limits: Limits, now: int) -> Beat:
        old = self.lease(user, stream_id, now)
        if old is not None:
            beat = replace(old, expires_at_ms=max(old.expires_at_ms, now + ttl_ms))
            self.leases[(user, stream_id)] = beat
            return Beat(beat)
        ended = self.tombstone(user, stream_id, now)
        if ended is not None:  # told so; the tombstone lasts a lease more while it is heartbeated
            until = self.ended[(user, stream_id)][1]
            self.ended[(user, stream_id)] = (ended, max(until, now + ttl_ms))
            return Beat(ended=ended)
        if limits.count(self.active(user, now)) >= self.limit_info(user, limits).limit:
            return Beat()  # (a stream admitted again has no device id: it is a device of its own)
        lease = self._admit(user, stream_id, None, now + ttl_ms, now, False)
        self._kick(user, now, None, (stream_id,))  # admitted again
        return Beat(lease, readmitted=True)

    def renew(self, leases: list[tuple[str, str]], ttl_ms: int, now: int) -> tuple[Renewal, ...]:
        out = []
        for user, stream_id in leases:
            old = self.lease(user, stream_id, now)
            if old is not None:
                renewed = replace(old, expires_at_ms=max(old.expires_at_ms, now + ttl_ms))
                self.leases[(user, stream_id)] = renewed
                out.append(Renewal(renewed.expires_at_ms))
            else:
                out.append(Renewal(ended=self.tombstone(user, stream_id, now)))
        return tuple(out)

    def stop(
        self, user: str, stream_id: str | None, ttl_ms: int, actor: Actor, audit: bool, now: int
    ) -> StopResult:
        active = self.active(user, now)
        if stream_id is None:  # compat: the oldest legacy lease, never a v1 one
            target = next((s for s in active if s.legacy), None)
        else:
            target = self.lease(user, stream_id, now)
        if target is None:
            return StopResult(None, len(active), at_ms=now)
        reason = EndReason.STOPPED_BY_ADMIN if audit else EndReason.STOPPED
        self._end(user, target.stream_id, Ended(target.stream_id, now, reason), now + ttl_ms)
        if audit:
            self._record(user, Event(now, "stopped_by_admin", actor, (target.stream_id,)), now)
        self._kick(user, now, reason, (target.stream_id,))
        return StopResult(target, len(active) - 1, at_ms=now)

    def stop_all(self, user: str, ttl_ms: int, actor: Actor, per_min: int, now: int) -> StoppedAll:
        wait = self._spend(self.stop_budgets, user, now, per_min)
        if wait:
            return StoppedAll(now, retry_after_ms=wait)
        ids = tuple(s.stream_id for s in self.active(user, now))
        for sid in ids:
            self._end(user, sid, Ended(sid, now, EndReason.STOPPED_ALL), now + ttl_ms)
        if ids:  # a stop-all that stopped nothing records nothing
            self._record(user, Event(now, "stopped_all", actor, ids), now)
        self._kick(user, now, EndReason.STOPPED_ALL, ids)
        return StoppedAll(now, ids)

    def list(self, user: str, limits: Limits, now: int) -> UserStreams:
        info = self.limit_info(user, limits)
        return UserStreams(user, info.limit, info.source, self.active(user, now), info.plan, limits.counts)

    def set_limit(self, user: str, limit: int | None, limits: Limits, actor: Actor, now: int) -> LimitInfo:
        if limit is None:
            self.limits.pop(user, None)
            self._record(user, Event(now, "limit_cleared", actor), now)
        else:
            self.limits[user] = limit
            self._record(user, Event(now, "limit_set", actor, value=str(limit)), now)
        return self.limit_info(user, limits)

    def set_plan(self, user: str, plan: str | None, limits: Limits, actor: Actor, now: int) -> LimitInfo:
        if plan is None:
            self.plans.pop(user, None)
            self._record(user, Event(now, "plan_cleared", actor), now)
        else:
            self.plans[user] = plan
            self._record(user, Event(now, "plan_set", actor, value=plan), now)
        return self.limit_info(user, limits)
