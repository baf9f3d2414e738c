"""The store interface. Every method is one atomic check-and-change on the store's clock."""

from __future__ import annotations

from typing import Protocol

from streamlimit.models import (
    Event,
    Evicted,
    LimitInfo,
    Limits,
    Start,
    StartResult,
    StopResult,
    Stream,
    UserStreams,
)


class Store(Protocol):
    """Raises ``StoreUnavailable`` (and nothing else) when the store cannot answer in time.
    ``actor`` names who acts, for the audit trail."""

    async def start(
        self, user_id: str, stream_id: str, device: str | None, ttl_ms: int, limits: Limits, how: Start
    ) -> StartResult:
        """Admit a new lease if a slot is free (or evict the oldest, if ``how`` says so), renew it
        if already active, else refuse; admissions spend the per-minute budget."""

    async def heartbeat(self, user_id: str, stream_id: str, ttl_ms: int) -> Stream | Evicted | None:
        """Extend an active lease to at least now + ttl; ``Evicted`` when another start replaced
        it within a lease TTL; None when it is not active."""

    async def stop(
        self, user_id: str, stream_id: str | None, actor: str = "", audit: bool = False
    ) -> StopResult:
        """Remove one active lease: ``stream_id``, or the oldest when None; with ``audit``,
        record it as stopped by an admin."""

    async def list(self, user_id: str, limits: Limits) -> UserStreams:
        """The user's active leases, oldest first, and effective limit."""

    async def stop_all(self, user_id: str, actor: str = "") -> int:
        """Remove every lease of the user, and record it; returns how many were active."""

    async def get_limit(self, user_id: str, limits: Limits) -> LimitInfo: ...

    async def set_limit(self, user_id: str, limit: int | None, limits: Limits, actor: str = "") -> LimitInfo:
        """Set the per-user override, or clear it when ``limit`` is None; recorded."""

    async def set_plan(self, user_id: str, plan: str | None, limits: Limits) -> LimitInfo:
        """Set the user's plan (an admin's choice, before any token's), or clear it."""

    async def events(self, user_id: str) -> tuple[Event, ...]:
        """The user's audit trail, newest first."""

    async def estimate_active(self) -> int:
        """Active streams of all users: exact, or (Redis) sampled from a part of the store."""

    async def ping(self) -> None:
        """Return when the store answers; raise ``StoreUnavailable`` otherwise."""

    async def close(self) -> None: ...
