"""In-process store with the Redis store's semantics; one process only. Takes an injected clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from streamlimit.models import LimitInfo, StartResult, StartStatus, StopResult, Stream, UserStreams

Clock = Callable[[], int]  # returns now in milliseconds


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


class MemoryStore:
    """Methods never await, so each one is atomic on the event loop, like a Lua script."""

    def __init__(self, clock: Clock = system_clock_ms) -> None:
        self._clock = clock
        self._users: dict[str, dict[str, Stream]] = {}  # user -> stream id -> lease
        self._limits: dict[str, int] = {}

    def _leases(self, user_id: str, now: int) -> dict[str, Stream]:
        # invariant: after this call no lease with expires_at_ms <= now survives
        leases = self._users.get(user_id)
        if leases is None:
            return {}
        for sid in [s for s, lease in leases.items() if lease.expires_at_ms <= now]:
            del leases[sid]
        if not leases:
            del self._users[user_id]
        return leases

    def _limit(self, user_id: str, default_limit: int) -> LimitInfo:
        override = self._limits.get(user_id)
        if override is None:
            return LimitInfo(user_id, default_limit, True)
        return LimitInfo(user_id, override, False)

    @staticmethod
    def _sorted(leases: dict[str, Stream]) -> tuple[Stream, ...]:
        return tuple(sorted(leases.values(), key=lambda s: (s.started_at_ms, s.stream_id)))

    async def start(
        self, user_id: str, stream_id: str, device: str | None, ttl_ms: int, default_limit: int
    ) -> StartResult:
        now = self._clock()
        leases = self._leases(user_id, now)
        limit = self._limit(user_id, default_limit).limit
        old = leases.get(stream_id)
        if old is not None:
            renewed = Stream(
                user_id,
                stream_id,
                old.device,
                old.started_at_ms,
                max(old.expires_at_ms, now + ttl_ms),
            )
            leases[stream_id] = renewed
            return StartResult(StartStatus.RENEWED, renewed, len(leases), limit)
        if len(leases) >= limit:
            return StartResult(StartStatus.REFUSED, None, len(leases), limit, self._sorted(leases))
        stream = Stream(user_id, stream_id, device, now, now + ttl_ms)
        leases = self._users.setdefault(user_id, leases)
        leases[stream_id] = stream
        return StartResult(StartStatus.ADMITTED, stream, len(leases), limit)

    async def heartbeat(self, user_id: str, stream_id: str, ttl_ms: int) -> Stream | None:
        now = self._clock()
        leases = self._leases(user_id, now)
        old = leases.get(stream_id)
        if old is None:
            return None
        expires = max(old.expires_at_ms, now + ttl_ms)
        leases[stream_id] = Stream(user_id, stream_id, old.device, old.started_at_ms, expires)
        return leases[stream_id]

    async def stop(self, user_id: str, stream_id: str | None) -> StopResult:
        leases = self._leases(user_id, self._clock())
        if stream_id is None:
            ordered = self._sorted(leases)
            stream_id = ordered[0].stream_id if ordered else None
        removed = leases.pop(stream_id, None) if stream_id is not None else None
        if not leases:
            self._users.pop(user_id, None)
        return StopResult(removed, len(leases))

    async def list(self, user_id: str, default_limit: int) -> UserStreams:
        leases = self._leases(user_id, self._clock())
        info = self._limit(user_id, default_limit)
        return UserStreams(user_id, info.limit, info.is_default, self._sorted(leases))

    async def stop_all(self, user_id: str) -> int:
        n = len(self._leases(user_id, self._clock()))
        self._users.pop(user_id, None)
        return n

    async def get_limit(self, user_id: str, default_limit: int) -> LimitInfo:
        return self._limit(user_id, default_limit)

    async def set_limit(self, user_id: str, limit: int | None, default_limit: int) -> LimitInfo:
        if limit is None:
            self._limits.pop(user_id, None)
        else:
            self._limits[user_id] = limit
        return self._limit(user_id, default_limit)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
