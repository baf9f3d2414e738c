"""Models -> JSON-ready dicts, and the JSON response type. Times are RFC 3339 UTC with ms
(streamlimit.times)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.responses import Response

from streamlimit.models import Stream
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


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def json(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> JSON:
    return JSON(content, status_code, headers)
