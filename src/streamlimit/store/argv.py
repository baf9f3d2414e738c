"""Each Lua script's ARGV, built in one place: with ``replies.py`` (its reply), the Python half of
a script's contract (lua/*.lua name their ARGV at their top, in this order)."""

from __future__ import annotations

from collections.abc import Sequence

from streamlimit.models import NO_ACTOR, Actor, Limits, Start
from streamlimit.store import replies

Argv = tuple[str | int, ...]


def _limits(limits: Limits) -> Argv:
    by_device = "1" if limits.by_device else "0"
    return limits.default, limits.encoded_plans(), limits.plan_hint or "", by_device, limits.per_device


def common(user_id: str, hooks_max_len: int, live_channel: str = "") -> Argv:
    """The last three ARGV of every script with the prelude: the user (for its webhook events),
    the webhook queue's length (0 when webhooks are off) and the user's live channel ('' when
    no kicks are published) (lua/_prelude.lua)."""
    return user_id, hooks_max_len, live_channel


def start(stream_id: str, device: str | None, ttl_ms: int, limits: Limits, how: Start) -> Argv:
    suffix, kind = replies.info(device, how.legacy)
    evict = "1" if how.evict_oldest else "0"
    return (
        stream_id,
        suffix,
        ttl_ms,
        *_limits(limits),
        evict,
        replies.actor(how.actor),
        how.starts_per_min,
        kind,
        how.device_id or "",
        how.replace or "",
    )


def heartbeat(stream_id: str, ttl_ms: int, limits: Limits) -> Argv:
    return (stream_id, ttl_ms, *_limits(limits))


def stop(stream_id: str | None, ttl_ms: int, actor: Actor = NO_ACTOR, audit: bool = False) -> Argv:
    return (stream_id or "", ttl_ms, replies.actor(actor), "1" if audit else "0")


def stop_all(ttl_ms: int, actor: Actor = NO_ACTOR, per_min: int = 0) -> Argv:
    return (ttl_ms, replies.actor(actor), per_min)


def listing(limits: Limits) -> Argv:
    return _limits(limits)


def limit(op: str, value: str | int, limits: Limits, actor: Actor = NO_ACTOR) -> Argv:
    return (op, value, *_limits(limits), replies.actor(actor))


def renew(ttl_ms: int, stream_ids: Sequence[str]) -> Argv:
    """lua/renew.lua: the TTL, then one stream id per lease (its keys are in KEYS, three each)."""
    return (ttl_ms, *stream_ids)
