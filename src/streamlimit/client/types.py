"""The client's return values: small frozen dataclasses parsed from the service's JSON.

Times are timezone-aware ``datetime`` objects in UTC. Members the service may add later are
ignored, so a newer service does not break an older client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any


def parse_time(stamp: str) -> datetime:
    """An RFC 3339 time such as ``2026-11-28T10:00:00.000Z`` -> an aware ``datetime`` (UTC)."""
    return datetime.fromisoformat(stamp)


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One active stream (a lease) of a user: ``device`` is the player's label for people,
    ``device_id`` the player installation's stable id (None when its start gave none)."""

    user_id: str
    stream_id: str
    device: str | None
    started_at: datetime
    expires_at: datetime
    epoch: int | None  # this lease's own admission epoch (fencing); None when degraded
    device_id: str | None = field(default=None, kw_only=True)  # kw_only: positions stay as they were

    @classmethod
    def parse(cls, b: Mapping[str, Any]) -> StreamInfo:
        epoch = b.get("epoch")
        return cls(
            b["user_id"],
            b["stream_id"],
            b["device"],
            parse_time(b["started_at"]),
            parse_time(b["expires_at"]),
            None if epoch is None else int(epoch),
            device_id=b.get("device_id"),  # absent from services older than device ids
        )


@dataclass(frozen=True, slots=True)
class LeaseInfo(StreamInfo):
    """A stream just started or renewed by a heartbeat: heartbeat every ``heartbeat_interval_s``;
    without one the lease ends ``lease_ttl_s`` after the last. ``degraded``: the store was down and
    the service let the request through without recording it (``ON_STORE_ERROR=allow``).
    ``readmitted`` (heartbeats): the stream was not active any more (a store outage, a long sleep)
    and took a free slot again, with a new ``epoch``. ``grant``: the signed playback grant of this
    answer, for a licence server or CDN downstream (None when the service signs none, or the
    answer is degraded; README "Enforcing it downstream")."""

    heartbeat_interval_s: float
    lease_ttl_s: float
    degraded: bool
    readmitted: bool
    grant: str | None

    @classmethod
    def parse(cls, b: Mapping[str, Any]) -> LeaseInfo:
        s = StreamInfo.parse(b)
        return cls(
            **{f.name: getattr(s, f.name) for f in fields(StreamInfo)},
            heartbeat_interval_s=float(b["heartbeat_interval_s"]),
            lease_ttl_s=float(b["lease_ttl_s"]),
            degraded=bool(b["degraded"]),
            readmitted=bool(b.get("readmitted", False)),
            grant=grant if isinstance(grant := b.get("grant"), str) else None,
        )


@dataclass(frozen=True, slots=True)
class StartInfo(LeaseInfo):
    """The answer to a start. ``admitted``: a new stream took a slot (201); False when an active
    stream was renewed, or the answer is degraded (200). ``evicted`` lists the streams that
    ``on_limit="evict_oldest"`` or ``replace=`` stopped in its favour, oldest first; ``replaced``
    the same device's own older streams it took over (a restarted player's). ``active`` (what
    the limit counts: ``counts`` is ``"streams"`` or ``"devices"``) and ``epoch`` are None when
    the answer is degraded (the store was down and nothing was recorded)."""

    admitted: bool
    active: int | None
    limit: int
    limit_source: str
    plan: str | None
    evicted: tuple[StreamInfo, ...]
    replaced: tuple[StreamInfo, ...] = ()
    counts: str = "streams"

    @classmethod
    def parse_start(cls, b: Mapping[str, Any], admitted: bool) -> StartInfo:
        lease = LeaseInfo.parse(b)
        evicted = b.get("evicted_streams") or ([b["evicted"]] if b.get("evicted") else [])
        active = b["active"]
        return cls(
            **{f.name: getattr(lease, f.name) for f in fields(LeaseInfo)},
            admitted=admitted,
            active=None if active is None else int(active),
            limit=int(b["limit"]),
            limit_source=b["limit_source"],
            plan=b.get("plan"),
            evicted=tuple(StreamInfo.parse(s) for s in evicted),
            replaced=tuple(StreamInfo.parse(s) for s in b.get("replaced_streams") or ()),
            counts=b.get("counts") or "streams",
        )


@dataclass(frozen=True, slots=True)
class StreamList:
    """A user's active streams, oldest first, and the room left under the limit. ``active`` is
    what the limit counts: streams, or distinct devices when ``counts`` is ``"devices"``."""

    user_id: str
    active: int
    limit: int
    limit_source: str
    plan: str | None
    remaining: int
    quota_exhausted: bool
    streams: tuple[StreamInfo, ...]
    counts: str = "streams"

    @classmethod
    def parse(cls, b: Mapping[str, Any]) -> StreamList:
        return cls(
            b["user_id"],
            int(b["active"]),
            int(b["limit"]),
            b["limit_source"],
            b.get("plan"),
            int(b["remaining"]),
            bool(b["quota_exhausted"]),
            tuple(StreamInfo.parse(s) for s in b["streams"]),
            b.get("counts") or "streams",
        )


@dataclass(frozen=True, slots=True)
class LimitInfo:
    """A user's stream limit; ``limit_source`` is ``user`` (an override), ``plan`` or ``default``."""

    user_id: str
    limit: int
    default: bool
    limit_source: str
    plan: str | None

    @classmethod
    def parse(cls, b: Mapping[str, Any]) -> LimitInfo:
        return cls(b["user_id"], int(b["limit"]), bool(b["default"]), b["limit_source"], b.get("plan"))


@dataclass(frozen=True, slots=True)
class Event:
    """One audit event (``evicted``, ``replaced``, ``stopped_all``, ``stopped_by_admin``,
    ``limit_set``, ``limit_cleared``, ``plan_set``, ...): who did it and to which streams.
    ``value``: the new limit or plan, or for ``evicted`` and ``replaced`` the stream that took
    the slot; ``device_id``: for ``replaced``, the device whose newer stream took over."""

    at: datetime
    action: str
    actor: str | None
    streams: tuple[str, ...]
    value: str | None = None
    device_id: str | None = None

    @classmethod
    def parse(cls, b: Mapping[str, Any]) -> Event:
        value = b.get("value")
        return cls(
            parse_time(b["at"]),
            b["action"],
            b.get("actor"),
            tuple(b.get("streams") or ()),
            None if value is None else str(value),
            b.get("device_id"),
        )
