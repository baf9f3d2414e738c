"""A tiny pure model of the lease rules of issue 2, written from the rules, not from any store.

Every operation takes the store's "now" (ms) explicitly and answers with the same value types the
stores answer with, so a reply can be compared with ``==``. Nothing is ever purged: a lease is
active while ``expires_at_ms > now``, and a record that is not active is simply ignored (and
replaced by the next start of that stream). So the model's state never depends on *when* an
operation looked at it, only on what the operation changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from streamlimit.models import LimitInfo, Limits, StartResult, StartStatus, StopResult, Stream, UserStreams


@dataclass
class Model:
    leases: dict[tuple[str, str], Stream] = field(default_factory=dict)  # (user, stream) -> lease
    limits: dict[str, int] = field(default_factory=dict)  # per-user overrides

    def copy(self) -> Model:
        return Model(dict(self.leases), dict(self.limits))

    # -- reading -------------------------------------------------------------------------------

    def limit_info(self, user: str, limits: Limits) -> LimitInfo:
        if user in self.limits:
            return LimitInfo(user, self.limits[user], "user")
        return LimitInfo(user, limits.default, "default")

    def active(self, user: str, now: int) -> tuple[Stream, ...]:
        """The user's active leases, oldest first (earliest started_at, ties by stream_id)."""
        alive = [s for (u, _), s in self.leases.items() if u == user and s.expires_at_ms > now]
        return tuple(sorted(alive, key=lambda s: (s.started_at_ms, s.stream_id)))

    def lease(self, user: str, stream_id: str, now: int) -> Stream | None:
        s = self.leases.get((user, stream_id))
        return s if s is not None and s.expires_at_ms > now else None

    def expiries(self, user: str) -> set[int]:
        """Every instant at which one of the user's leases stops being active."""
        return {s.expires_at_ms for (u, _), s in self.leases.items() if u == user}

    # -- the operations ------------------------------------------------------------------------

    def start(
        self, user: str, stream_id: str, device: str | None, ttl_ms: int, default_limit: int, now: int
    ) -> StartResult:
        info = self.limit_info(user, Limits(default_limit))
        limit, source = info.limit, info.source
        active = self.active(user, now)
        old = self.lease(user, stream_id, now)
        # the epoch is left out (None): test_model checks that it grows, not its value
        if old is not None:  # a retry: renew, keep started_at and device, never count twice
            renewed = replace(old, expires_at_ms=max(old.expires_at_ms, now + ttl_ms))
            self.leases[(user, stream_id)] = renewed
            return StartResult(
                StartStatus.RENEWED, renewed, len(active), limit, limit_source=source, epoch=None
            )
        if len(active) >= limit:
            return StartResult(
                StartStatus.REFUSED, None, len(active), limit, active, limit_source=source, epoch=None
            )
        new = Stream(user, stream_id, device, now, now + ttl_ms)
        self.leases[(user, stream_id)] = new
        return StartResult(StartStatus.ADMITTED, new, len(active) + 1, limit, limit_source=source)

    def heartbeat(self, user: str, stream_id: str, ttl_ms: int, now: int) -> Stream | None:
        old = self.lease(user, stream_id, now)
        if old is None:
            return None
        beat = replace(old, expires_at_ms=max(old.expires_at_ms, now + ttl_ms))
        self.leases[(user, stream_id)] = beat
        return beat

    def stop(self, user: str, stream_id: str | None, now: int) -> StopResult:
        active = self.active(user, now)
        # the given stream, or the oldest active one
        target = next(iter(active), None) if stream_id is None else self.lease(user, stream_id, now)
        if target is None:
            return StopResult(None, len(active))
        del self.leases[(user, target.stream_id)]
        return StopResult(target, len(active) - 1)

    def stop_all(self, user: str, now: int) -> int:
        n = len(self.active(user, now))
        for key in [k for k in self.leases if k[0] == user]:
            del self.leases[key]
        return n

    def list(self, user: str, limits: Limits, now: int) -> UserStreams:
        info = self.limit_info(user, limits)
        return UserStreams(user, info.limit, info.source, self.active(user, now))

    def set_limit(self, user: str, limit: int | None, limits: Limits) -> LimitInfo:
        if limit is None:
            self.limits.pop(user, None)
        else:
            self.limits[user] = limit
        return self.limit_info(user, limits)
