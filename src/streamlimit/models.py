"""Plain values passed between the layers. Times are integer milliseconds of the store's clock."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Stream:
    """A lease: active while ``expires_at_ms`` is in the future."""

    user_id: str
    stream_id: str
    device: str | None
    started_at_ms: int
    expires_at_ms: int
    epoch: int | None = None  # this lease's own admission epoch (fencing); None when degraded
    legacy: bool = False  # started through the compat API
    device_id: str | None = None  # the player installation's stable id (an id), if it gave one

    @property
    def slot(self) -> str:
        """What this lease counts as when devices are counted: its device, or itself."""
        return f"d:{self.device_id}" if self.device_id is not None else f"s:{self.stream_id}"


@dataclass(frozen=True, slots=True)
class Limits:
    """How a user's limit is found: per-user override > plan (an admin's, then the token's) >
    default. ``plans`` names are ``[A-Za-z0-9_]+``."""

    default: int
    plans: tuple[tuple[str, int], ...] = ()
    plan_hint: str | None = None  # the caller's plan claim
    counts: str = "streams"  # what the limit counts: "streams", or "devices" (distinct device ids)
    per_device: int = 1  # streams one device may hold before its own oldest is replaced

    def encoded_plans(self) -> str:
        return ",".join(f"{name}={limit}" for name, limit in self.plans)

    @property
    def by_device(self) -> bool:
        return self.counts == "devices"

    def count(self, streams: tuple[Stream, ...] | list[Stream]) -> int:
        """How much of the limit ``streams`` take: streams, or distinct devices (a stream without
        a device id is a device of its own)."""
        return len({s.slot for s in streams}) if self.by_device else len(streams)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted, for the audit trail: a name (token subject or API key name), a role
    (``admin`` when acting on another user's account, else ``player``), the credential (a
    token's ``jti``, an API key's name), the request id and the client's address."""

    name: str = ""
    role: str = "player"
    credential: str | None = None
    request_id: str | None = None
    client: str | None = None

    def as_seen_by_player(self) -> Actor:
        """An operator's action as the account's own player sees it: its role, not who."""
        return self if self.role != "admin" else Actor("admin", "admin")


NO_ACTOR = Actor()


@dataclass(frozen=True, slots=True)
class Start:
    """What a start asks for besides the stream: evict the oldest when full, who asks (for
    the audit trail), the per-minute budget of admissions (0: none), whether the lease is a
    legacy (compat) one, the player's device id (its own older streams past the per-device
    number are replaced) and a stream to replace ("watch here instead of there")."""

    evict_oldest: bool = False
    actor: Actor = NO_ACTOR
    starts_per_min: int = 0
    legacy: bool = False
    device_id: str | None = None
    replace: str | None = None


class StartStatus(enum.Enum):
    ADMITTED = "admitted"  # a new lease took a free slot (or the evicted oldest's)
    RENEWED = "renewed"  # the stream was already active; its lease was extended
    REFUSED = "refused"  # the user holds `limit` active streams
    TOO_MANY = "too_many_starts"  # the per-minute start budget is spent
    TARGET_NOT_ACTIVE = "target_not_active"  # the stream to replace is not active: nothing done


@dataclass(frozen=True, slots=True)
class StartResult:
    status: StartStatus
    stream: Stream | None  # None when refused
    active: int | None  # what the limit counts (streams or devices) after the call; None: degraded
    limit: int
    streams: tuple[Stream, ...] = ()  # the active streams, filled when refused
    degraded: bool = False  # answered by the outage policy, not by the store
    limit_source: str = "default"  # "user", "plan" or "default"
    plan: str | None = None
    evicted: tuple[Stream, ...] = ()  # the streams this admission evicted, oldest first
    replaced: tuple[Stream, ...] = ()  # the same device's streams it replaced, oldest first
    retry_after_ms: int = 0  # TOO_MANY: when the budget allows the next admission

    @property
    def epoch(self) -> int | None:
        """The lease's own admission epoch; None when refused or degraded."""
        return self.stream.epoch if self.stream is not None else None


class EndReason(enum.Enum):
    EVICTED = "evicted"  # another start took its slot ("watch here instead")
    STOPPED = "stopped"  # stopped by its own player
    STOPPED_ALL = "stopped_all"  # "sign out of all devices"
    STOPPED_BY_ADMIN = "stopped_by_admin"
    REPLACED = "replaced"  # a newer stream of the same device took over its slot


@dataclass(frozen=True, slots=True)
class Ended:
    """A tombstone: why an active stream ended, remembered one lease TTL, so that its late
    heartbeats are told (410) instead of admitting it again."""

    stream_id: str
    at_ms: int
    reason: EndReason
    replaced_by: str | None = None  # EVICTED, REPLACED: the stream that took the slot


@dataclass(frozen=True, slots=True)
class Beat:
    """A heartbeat's answer from the store: the lease after it (renewed, or admitted again when
    it was not active, had no tombstone and a slot was free), its tombstone, or neither."""

    stream: Stream | None = None
    readmitted: bool = False
    ended: Ended | None = None


@dataclass(frozen=True, slots=True)
class Renewal:
    """A batch renewal's answer for one lease (the live channels'): its new expiry when it was
    active, else its tombstone, else neither; unlike a heartbeat it never admits again."""

    expires_at_ms: int | None = None
    ended: Ended | None = None


@dataclass(frozen=True, slots=True)
class Kick:
    """What the store pushes to a user's live channels when one call ended some of its streams:
    the streams, why, when and (evicted, replaced) the stream that took their place; or, with no
    reason, admitted one (a start, a heartbeat's re-admission: for views of the user's streams)."""

    user_id: str
    at_ms: int
    reason: EndReason | None  # None: admitted
    stream_ids: tuple[str, ...]
    replaced_by: str | None = None

    def ended(self) -> tuple[Ended, ...]:
        if self.reason is None:
            return ()
        return tuple(Ended(s, self.at_ms, self.reason, self.replaced_by) for s in self.stream_ids)


@dataclass(frozen=True, slots=True)
class Event:
    """One audit-trail entry: evicted, replaced, stopped_all, stopped_by_admin, limit_set,
    limit_cleared, plan_set, plan_cleared; ``value``: the new limit or plan, or the stream that
    took an evicted or replaced one's slot; ``device_id``: the device whose stream was replaced."""

    at_ms: int
    action: str
    actor: Actor
    streams: tuple[str, ...] = ()
    value: str | None = None
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    stream: Stream
    degraded: bool = False
    readmitted: bool = False  # the stream was not active and took a free slot again
    limit: int | None = None  # the user's limit, when asked for (a grant's lim); None if unknown


@dataclass(frozen=True, slots=True)
class StopResult:
    removed: Stream | None  # None when nothing active matched
    active: int | None  # active streams after the call; None when degraded
    degraded: bool = False
    at_ms: int | None = None  # the store's time of the stop; None when degraded


@dataclass(frozen=True, slots=True)
class StoppedAll:
    """A stop-all: when (the store's time), and the streams it stopped, oldest first; or,
    with ``retry_after_ms``, refused because the user's stop-all budget is spent."""

    at_ms: int
    stream_ids: tuple[str, ...] = ()
    retry_after_ms: int = 0


@dataclass(frozen=True, slots=True)
class LimitInfo:
    user_id: str
    limit: int
    source: str  # "user" (override), "plan" or "default"
    plan: str | None = None

    @property
    def is_default(self) -> bool:
        """No per-user override is set."""
        return self.source != "user"


@dataclass(frozen=True, slots=True)
class UserStreams:
    user_id: str
    limit: int
    limit_source: str
    streams: tuple[Stream, ...] = field(default=())  # oldest first
    plan: str | None = None
    counts: str = "streams"  # what the limit counts: "streams" or "devices"

    @property
    def active(self) -> int:
        """What the limit counts: active streams, or their distinct devices."""
        return len({s.slot for s in self.streams}) if self.counts == "devices" else len(self.streams)

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.active)
