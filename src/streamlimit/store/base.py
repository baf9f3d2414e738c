"""The store interface. Every method is one atomic check-and-change on the store's clock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from streamlimit.models import (
    NO_ACTOR,
    Actor,
    Beat,
    Event,
    Kick,
    LimitInfo,
    Limits,
    Renewal,
    Start,
    StartResult,
    StoppedAll,
    StopResult,
    UserStreams,
)


class Feed(Protocol):
    """The kicks of the users a worker watches (their live channels), as the store pushes them.
    Kicks published while a feed is cut off are lost: it then calls its ``on_gap``."""

    async def watch(self, user_id: str) -> None:
        """Return once kicks of ``user_id`` are delivered; ``StoreUnavailable`` when that is not
        confirmed in time (the feed keeps trying)."""

    def unwatch(self, user_id: str) -> None: ...

    async def sync(self) -> None:
        """Return once every kick published before this call was delivered (tests)."""

    async def close(self) -> None: ...


class Store(Protocol):
    """Raises ``StoreUnavailable`` (and nothing else) when the store cannot answer in time.
    ``actor`` names who acts, for the audit trail."""

    async def start(
        self, user_id: str, stream_id: str, device: str | None, ttl_ms: int, limits: Limits, how: Start
    ) -> StartResult:
        """Admit a new lease if a slot is free (or, if ``how`` says so, evict the oldest, as many
        as it takes to end at the limit), renew it if already active, else refuse; admissions
        spend the per-minute budget. Each lease gets its own epoch, above every earlier one."""

    async def heartbeat(self, user_id: str, stream_id: str, ttl_ms: int, limits: Limits) -> Beat:
        """Extend an active lease to at least now + ttl; the tombstone when it was evicted or
        stopped within a lease TTL; otherwise admit it again when a slot is free (no budget)."""

    async def renew(self, leases: Sequence[tuple[str, str]], ttl_ms: int) -> tuple[Renewal, ...]:
        """Extend each active lease of ``(user_id, stream_id)`` to at least now + ttl, as a heartbeat
        does; for one that is not active, its tombstone while it lasts; never admits again. One
        answer per lease, in order (the live channels' batches)."""

    def feed(self, on_kick: Callable[[Kick], None], on_gap: Callable[[], None]) -> Feed:
        """A feed of kicks: each call that ends streams (evicts, replaces, stops) publishes one."""

    async def stop(
        self, user_id: str, stream_id: str | None, ttl_ms: int, actor: Actor = NO_ACTOR, audit: bool = False
    ) -> StopResult:
        """Remove one active lease: ``stream_id``, or the oldest legacy (compat) one when None,
        leaving a tombstone for ``ttl_ms``; with ``audit``, record it as stopped by an admin."""

    async def list(self, user_id: str, limits: Limits) -> UserStreams:
        """The user's active leases, oldest first, and effective limit."""

    async def stop_all(
        self, user_id: str, ttl_ms: int, actor: Actor = NO_ACTOR, per_min: int = 0
    ) -> StoppedAll:
        """Remove every lease of the user, each with a tombstone for ``ttl_ms``, and record it
        when any was active; returns when, and the ids stopped, oldest first. Each call spends
        one of the user's stop-all budget (``per_min``; 0: none); when it is spent nothing is
        done and ``retry_after_ms`` says when the next is allowed."""

    async def get_limit(self, user_id: str, limits: Limits) -> LimitInfo: ...

    async def set_limit(
        self, user_id: str, limit: int | None, limits: Limits, actor: Actor = NO_ACTOR
    ) -> LimitInfo:
        """Set the per-user override, or clear it when ``limit`` is None; recorded."""

    async def set_plan(
        self, user_id: str, plan: str | None, limits: Limits, actor: Actor = NO_ACTOR
    ) -> LimitInfo:
        """Set the user's plan (an admin's choice, before any token's), or clear it; recorded."""

    async def events(self, user_id: str) -> tuple[Event, ...]:
        """The user's audit trail, newest first."""

    async def estimate_active(self) -> int:
        """Active streams of all users: exact, or (Redis) sampled from a part of the store."""

    async def ping(self) -> None:
        """Return when the store answers; raise ``StoreUnavailable`` otherwise."""

    async def close(self) -> None: ...
