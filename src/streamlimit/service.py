"""The rules: limits, lease lengths and the outage policy. Knows no HTTP and no Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from streamlimit.errors import (
    Forbidden,
    InvalidId,
    InvalidInput,
    ReplaceTargetNotActive,
    StoreUnavailable,
    StreamEvicted,
    StreamNotActive,
    StreamReplaced,
    StreamStopped,
    TooManyStarts,
    TooManyStopAlls,
    UnknownPlan,
)
from streamlimit.ids import ID_RULE, MAX_DEVICE_LEN, MAX_LIMIT, is_valid_id
from streamlimit.models import (
    Actor,
    Ended,
    EndReason,
    Event,
    HeartbeatResult,
    LimitInfo,
    Limits,
    Start,
    StartResult,
    StartStatus,
    StopResult,
    Stream,
    UserStreams,
)
from streamlimit.outage import OutageLog
from streamlimit.settings import Settings, is_plan_name
from streamlimit.store.base import Store
from streamlimit.text import UNSAFE_RULE, has_unsafe

audit_log = logging.getLogger("streamlimit.audit")


def _audit(
    action: str, user_id: str, actor: Actor, streams: tuple[str, ...] = (), value: str | None = None
) -> None:
    """The audit trail's events as structured log lines too, with the same members, so a log
    pipeline keeps the whole trail when the store's last 100 roll over."""
    if audit_log.isEnabledFor(logging.INFO):
        fields: dict[str, object] = {"event": "audit", "action": action, "user_id": user_id}
        fields |= {"actor": actor.name, "role": actor.role, "credential": actor.credential}
        fields |= {"request_id": actor.request_id, "client": actor.client, "streams": list(streams)}
        if value is not None:
            fields["value"] = value
        audit_log.info("audit %s", action, extra={"fields": fields})


@dataclass(frozen=True, slots=True)
class Policy:
    default_limit: int = 3
    lease_ttl_ms: int = 90_000
    legacy_lease_ttl_ms: int = 21_600_000
    heartbeat_interval_s: float = 30
    on_store_error: Literal["allow", "deny"] = "allow"
    plans: tuple[tuple[str, int], ...] = ()
    on_limit: Literal["reject", "evict_oldest"] = "reject"
    allow_client_evict: bool = True
    starts_per_min: int = 0
    stop_alls_per_min: int = 0
    limit_counts: Literal["streams", "devices"] = "streams"
    streams_per_device: int = 1

    @classmethod
    def from_settings(cls, s: Settings) -> Policy:
        return cls(
            default_limit=s.default_limit,
            lease_ttl_ms=round(s.lease_ttl_s * 1000),
            legacy_lease_ttl_ms=round(s.legacy_lease_ttl_s * 1000),
            heartbeat_interval_s=s.heartbeat_interval_s,
            on_store_error=s.on_store_error,
            plans=s.plan_limits,
            on_limit=s.on_limit,
            allow_client_evict=s.allow_client_evict,
            starts_per_min=s.start_rate_per_min,
            stop_alls_per_min=s.stop_all_rate_per_min,
            limit_counts=s.limit_counts,
            streams_per_device=s.streams_per_device,
        )

    def limits(self, plan_hint: str | None = None) -> Limits:
        """The limit rule; a plan claim that is not a plan name is ignored (default applies)."""
        hint = plan_hint if is_plan_name(plan_hint) else None
        return Limits(self.default_limit, self.plans, hint, self.limit_counts, self.streams_per_device)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who acts, as far as the rules care: a name for the audit trail, the plan their token
    claims, whether they act as an admin on someone else's account, and for the audit trail
    the credential (a token's ``jti``, an API key's name), the request id and client address."""

    name: str = ""
    plan: str | None = None
    admin: bool = False
    credential: str | None = None
    request_id: str | None = None
    client: str | None = None

    @property
    def actor(self) -> Actor:
        role = "admin" if self.admin else "player"
        return Actor(self.name, role, self.credential, self.request_id, self.client)


NOBODY = Caller()


def _alias(device_id: str | None) -> str | None:
    """A device id as shown to a player that may not evict: the same for the same device (lists
    still show which streams share one), but no id ("~" is outside the id rule), so it cannot be
    sent back to take that device's slot."""
    if device_id is None:
        return None
    return "~" + hashlib.sha256(device_id.encode()).hexdigest()[:16]


def _without_device_ids(streams: tuple[Stream, ...]) -> tuple[Stream, ...]:
    return tuple(dataclasses.replace(s, device_id=_alias(s.device_id)) for s in streams)


def check_id(name: str, value: str) -> None:
    if not is_valid_id(value):
        raise InvalidId(name, f"{name} must be {ID_RULE}")


def ended_error(user_id: str, stream_id: str, ended: Ended | None) -> StreamNotActive:
    """What a stream that is not active answers: its tombstone's error (410), else 404."""
    if ended is None:
        return StreamNotActive(user_id, stream_id)
    if ended.reason is EndReason.EVICTED:
        return StreamEvicted(user_id, stream_id, ended.at_ms, ended.replaced_by or "")
    if ended.reason is EndReason.REPLACED:
        return StreamReplaced(user_id, stream_id, ended.at_ms, ended.replaced_by or "")
    return StreamStopped(user_id, stream_id, ended.at_ms, ended.reason.value)


class StreamService:
    """Validates ids, applies the policy, and turns store outages into the configured answer."""

    def __init__(self, store: Store, policy: Policy, outage_log: OutageLog | None = None) -> None:
        self.store = store
        self.policy = policy
        self.outage_log = outage_log or OutageLog()

    def _degrade(self, op: str, exc: StoreUnavailable) -> None:
        if self.policy.on_store_error == "deny":
            self.outage_log.warn(f"answering {op} with 503, on_store_error=deny", exc)
            raise exc
        self.outage_log.warn(f"answering {op} degraded, on_store_error=allow", exc)

    async def start(
        self,
        user_id: str,
        stream_id: str | None = None,
        device: str | None = None,
        *,
        legacy: bool = False,
        on_limit: str | None = None,
        caller: Caller = NOBODY,
        device_id: str | None = None,
        replace: str | None = None,
    ) -> StartResult:
        """Admit, renew, refuse; ``on_limit`` (``reject``/``evict_oldest``) overrides the policy
        for this request when clients may choose. ``device_id``: the player installation's id
        (its own older streams past the per-device number are replaced); ``replace``: a stream
        to stop in this one's favour ("watch here instead of there"), which players may name
        when they may choose evictions. ``TooManyStarts`` when the budget is spent,
        ``ReplaceTargetNotActive`` when the stream to replace is not active."""
        check_id("user_id", user_id)
        if stream_id is None:
            stream_id = str(uuid.uuid4())
        check_id("stream_id", stream_id)
        if device_id is not None:
            check_id("device_id", device_id)
        if replace is not None:
            check_id("replace", replace)
            if not (caller.admin or self.policy.allow_client_evict):
                raise Forbidden(
                    "players may not name a stream to replace (STREAMLIMIT_ALLOW_CLIENT_EVICT=false)"
                )
        if device is not None and len(device) > MAX_DEVICE_LEN:
            raise InvalidInput("device", f"device must be at most {MAX_DEVICE_LEN} characters")
        if device is not None and has_unsafe(device):
            raise InvalidInput("device", f"device must not contain {UNSAFE_RULE}")
        ttl_ms = self.policy.legacy_lease_ttl_ms if legacy else self.policy.lease_ttl_ms
        how = Start(
            self._evicts(on_limit), caller.actor, self.policy.starts_per_min, legacy, device_id, replace
        )
        limits = self.policy.limits(caller.plan)
        try:
            result = await self.store.start(user_id, stream_id, device, ttl_ms, limits, how)
        except StoreUnavailable as exc:
            self._degrade("start", exc)
            now = time.time_ns() // 1_000_000  # degraded answers only: the store's clock is gone
            stream = Stream(user_id, stream_id, device, now, now + ttl_ms, device_id=device_id)
            return StartResult(StartStatus.ADMITTED, stream, None, self.policy.default_limit, degraded=True)
        if result.status is StartStatus.TOO_MANY:
            raise TooManyStarts(user_id, result.retry_after_ms)
        if result.status is StartStatus.TARGET_NOT_ACTIVE:
            raise ReplaceTargetNotActive(user_id, replace or "")
        for victim in result.evicted:
            _audit("evicted", user_id, caller.actor, (victim.stream_id,), stream_id)
        for old in result.replaced:
            _audit("replaced", user_id, caller.actor, (old.stream_id,), stream_id)
        if result.streams and self._hides_devices(caller):
            result = dataclasses.replace(result, streams=_without_device_ids(result.streams))
        return result

    def _hides_devices(self, caller: Caller) -> bool:
        """Whether ``caller`` is shown no device ids of the account's streams: a player that may
        not evict could otherwise copy another device's id and "reclaim" its slot."""
        return not (caller.admin or self.policy.allow_client_evict)

    def _evicts(self, on_limit: str | None) -> bool:
        if on_limit is None or on_limit == self.policy.on_limit:
            return self.policy.on_limit == "evict_oldest"
        if on_limit not in ("reject", "evict_oldest"):
            raise InvalidInput("on_limit", "on_limit must be reject or evict_oldest")
        if not self.policy.allow_client_evict:
            raise Forbidden(
                "choosing on_limit per request is disabled (STREAMLIMIT_ALLOW_CLIENT_EVICT=false)"
            )
        return on_limit == "evict_oldest"

    async def heartbeat(
        self, user_id: str, stream_id: str, caller: Caller = NOBODY, *, with_limit: bool = False
    ) -> HeartbeatResult:
        """Renew the lease; a stream that is not active (after an outage, a long sleep) and was
        neither evicted nor stopped is admitted again when a slot is free (``readmitted``).
        ``with_limit``: also read the user's limit, in the same store round trip (for grants)."""
        check_id("user_id", user_id)
        check_id("stream_id", stream_id)
        ttl_ms, limits = self.policy.lease_ttl_ms, self.policy.limits(caller.plan)
        limit: int | None = None
        # the limit is read beside the heartbeat, not after it: both calls share the round trip
        reading = asyncio.ensure_future(self._limit_or_none(user_id, limits)) if with_limit else None
        try:
            beat = await self.store.heartbeat(user_id, stream_id, ttl_ms, limits)
            if reading is not None:
                limit = await reading
        except StoreUnavailable as exc:
            self._degrade("heartbeat", exc)
            now = time.time_ns() // 1_000_000
            stream = Stream(user_id, stream_id, None, now, now + ttl_ms)
            return HeartbeatResult(stream, degraded=True, limit=self.policy.default_limit)
        if beat.stream is not None:
            return HeartbeatResult(beat.stream, readmitted=beat.readmitted, limit=limit)
        raise ended_error(user_id, stream_id, beat.ended)

    async def _limit_or_none(self, user_id: str, limits: Limits) -> int | None:
        try:
            return (await self.store.get_limit(user_id, limits)).limit
        except StoreUnavailable:  # the heartbeat beside it says what the outage means
            return None

    async def stop(self, user_id: str, stream_id: str | None = None, caller: Caller = NOBODY) -> StopResult:
        """Stop ``stream_id``, or the oldest legacy (compat) stream when None; an admin's stop of
        another user's stream goes to the audit trail. A tombstone answers its late heartbeats."""
        check_id("user_id", user_id)
        if stream_id is not None:
            check_id("stream_id", stream_id)
        try:
            ttl_ms = self.policy.lease_ttl_ms
            result = await self.store.stop(user_id, stream_id, ttl_ms, caller.actor, caller.admin)
        except StoreUnavailable as exc:
            self._degrade("stop", exc)
            return StopResult(None, None, degraded=True)
        if caller.admin and result.removed is not None:
            _audit("stopped_by_admin", user_id, caller.actor, (result.removed.stream_id,))
        return result

    async def list(self, user_id: str, caller: Caller = NOBODY) -> UserStreams:
        """The active streams, oldest first (device ids hidden from players that may not evict)."""
        check_id("user_id", user_id)
        found = await self.store.list(user_id, self.policy.limits(caller.plan))
        if self._hides_devices(caller):
            return dataclasses.replace(found, streams=_without_device_ids(found.streams))
        return found

    async def get(self, user_id: str, stream_id: str, caller: Caller = NOBODY) -> Stream:
        """One active stream; ``StreamNotActive`` when it is not."""
        check_id("stream_id", stream_id)
        for stream in (await self.list(user_id, caller)).streams:
            if stream.stream_id == stream_id:
                return stream
        raise StreamNotActive(user_id, stream_id)

    async def stop_all(self, user_id: str, caller: Caller = NOBODY) -> int:
        check_id("user_id", user_id)
        ttl_ms, per_min = self.policy.lease_ttl_ms, self.policy.stop_alls_per_min
        stopped = await self.store.stop_all(user_id, ttl_ms, caller.actor, per_min)
        if stopped.retry_after_ms:
            raise TooManyStopAlls(user_id, stopped.retry_after_ms)
        if stopped.stream_ids:  # a stop-all that stopped nothing records nothing
            _audit("stopped_all", user_id, caller.actor, stopped.stream_ids)
        return len(stopped.stream_ids)

    async def get_limit(self, user_id: str, caller: Caller = NOBODY) -> LimitInfo:
        check_id("user_id", user_id)
        return await self.store.get_limit(user_id, self.policy.limits(caller.plan))

    async def set_limit(self, user_id: str, limit: int | None, caller: Caller = NOBODY) -> LimitInfo:
        """Set the per-user override, or clear it (back to plan or default) when None."""
        check_id("user_id", user_id)
        if limit is not None and not 0 <= limit <= MAX_LIMIT:
            raise InvalidInput("limit", f"limit must be an integer from 0 to {MAX_LIMIT}")
        info = await self.store.set_limit(user_id, limit, self.policy.limits(), caller.actor)
        if limit is None:
            _audit("limit_cleared", user_id, caller.actor)
        else:
            _audit("limit_set", user_id, caller.actor, value=str(limit))
        return info

    async def set_plan(self, user_id: str, plan: str | None, caller: Caller = NOBODY) -> LimitInfo:
        """Put the user on ``plan`` (one of the configured plans), or take them off it."""
        check_id("user_id", user_id)
        if plan is not None and plan not in dict(self.policy.plans):
            names = ", ".join(name for name, _ in self.policy.plans) or "none configured"
            raise UnknownPlan(f"no plan {plan!r}; the configured plans: {names}")
        info = await self.store.set_plan(user_id, plan, self.policy.limits(), caller.actor)
        if plan is None:
            _audit("plan_cleared", user_id, caller.actor)
        else:
            _audit("plan_set", user_id, caller.actor, value=plan)
        return info

    async def events(self, user_id: str, caller: Caller = NOBODY) -> tuple[Event, ...]:
        check_id("user_id", user_id)
        found = await self.store.events(user_id)
        if self._hides_devices(caller):
            return tuple(dataclasses.replace(e, device_id=_alias(e.device_id)) for e in found)
        return found
