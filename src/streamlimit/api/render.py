"""Models -> JSON-ready dicts, and the JSON response type. Times are RFC 3339 UTC with ms
(streamlimit.times)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.responses import Response

from streamlimit.models import Stream, UserStreams
from streamlimit.times import rfc3339 as rfc3339  # where the api modules have it from


def stream_body(s: Stream) -> dict[str, Any]:
    return {
        "user_id": s.user_id,
        "stream_id": s.stream_id,
        "device": s.device,
        "device_id": s.device_id,
        "started_at": rfc3339(s.started_at_ms),
        "expires_at": rfc3339(s.expires_at_ms),
        "epoch": s.epoch,
        "legacy": s.legacy,
    }


def streams_body(user: UserStreams) -> dict[str, Any]:
    """A user's active streams and limit (GET /v1/users/{user_id}/streams, and the live view)."""
    return {
        "user_id": user.user_id,
        "active": user.active,
        "limit": user.limit,
        "limit_source": user.limit_source,
        "plan": user.plan,
        "counts": user.counts,
        "remaining": user.remaining,
        "quota_exhausted": user.active >= user.limit,
        "streams": [stream_body(s) for s in user.streams],
    }


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def json(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> JSON:
    return JSON(content, status_code, headers)
