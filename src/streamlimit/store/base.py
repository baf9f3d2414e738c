"""The store interface. Every method is one atomic check-and-change on the store's clock."""

from __future__ import annotations

from typing import Protocol

from streamlimit.models import LimitInfo, StartResult, StopResult, Stream, UserStreams


class Store(Protocol):
    """Raises ``StoreUnavailable`` (and nothing else) when the store cannot answer in time."""

    async def start(
        self, user_id: str, stream_id: str, device: str | None, ttl_ms: int, default_limit: int
    ) -> StartResult:
        """Admit a new lease if a slot is free, renew it if already active, else refuse."""

    async def heartbeat(self, user_id: str, stream_id: str, ttl_ms: int) -> Stream | None:
        """Extend an active lease to at least now + ttl; None when it is not active."""

    async def stop(self, user_id: str, stream_id: str | None) -> StopResult:
        """Remove one active lease: ``stream_id``, or the oldest when None."""

    async def list(self, user_id: str, default_limit: int) -> UserStreams:
        """The user's active leases, oldest first, and effective limit."""

    async def stop_all(self, user_id: str) -> int:
        """Remove every lease of the user; returns how many were active."""

    async def get_limit(self, user_id: str, default_limit: int) -> LimitInfo: ...

    async def set_limit(self, user_id: str, limit: int | None, default_limit: int) -> LimitInfo:
        """Set the per-user override, or clear it when ``limit`` is None."""

    async def ping(self) -> None:
        """Return when the store answers; raise ``StoreUnavailable`` otherwise."""

    async def close(self) -> None: ...
