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


class StartStatus(enum.Enum):
    ADMITTED = "admitted"  # a new lease took a free slot
    RENEWED = "renewed"  # the stream was already active; its lease was extended
    REFUSED = "refused"  # the user holds `limit` active streams


@dataclass(frozen=True, slots=True)
class StartResult:
    status: StartStatus
    stream: Stream | None  # None when refused
    active: int | None  # active streams after the call; None when degraded
    limit: int
    streams: tuple[Stream, ...] = ()  # the active streams, filled when refused
    degraded: bool = False  # answered by the outage policy, not by the store


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    stream: Stream
    degraded: bool = False


@dataclass(frozen=True, slots=True)
class StopResult:
    removed: Stream | None  # None when nothing active matched
    active: int | None  # active streams after the call; None when degraded
    degraded: bool = False


@dataclass(frozen=True, slots=True)
class LimitInfo:
    user_id: str
    limit: int
    is_default: bool  # no per-user override is set


@dataclass(frozen=True, slots=True)
class UserStreams:
    user_id: str
    limit: int
    is_default_limit: bool
    streams: tuple[Stream, ...] = field(default=())  # oldest first

    @property
    def active(self) -> int:
        return len(self.streams)

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.active)
