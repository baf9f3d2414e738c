"""The client's exceptions, and the mapping from a problem+json response to one of them.

Every error is a :class:`StreamLimitError`; :attr:`StreamLimitError.transient` tells whether
retrying the same request later may succeed (an outage, a timeout, a start budget).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from streamlimit.client.types import StreamInfo, parse_time


class StreamLimitError(Exception):
    """An error answered by the service (``status`` and its problem ``code``), or no answer at all
    (``status`` None: a connection error or a timeout). ``body`` is the problem+json object
    (empty when the response had none)."""

    def __init__(
        self, status: int | None, code: str | None, detail: str, body: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {detail}" if status is not None else f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.body: Mapping[str, Any] = body or {}

    @property
    def transient(self) -> bool:
        """Whether the same request may succeed if retried later (5xx, 408, 429, no answer)."""
        return self.status is None or self.status in (408, 429) or self.status >= 500


class Unavailable(StreamLimitError):
    """503 ``store_unavailable`` (or 502/504 from a proxy), or no answer: a connection error or
    a timeout. Transient; ``retry_after_s`` is the server's Retry-After, if any."""

    def __init__(
        self,
        status: int | None,
        code: str | None,
        detail: str,
        body: Mapping[str, Any] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(status, code, detail, body)
        self.retry_after_s = retry_after_s


class TooManyStarts(StreamLimitError):
    """429 ``too_many_starts``: this account started too many streams lately. Transient: retry
    after ``retry_after_s`` seconds."""

    def __init__(
        self, status: int, code: str | None, detail: str, body: Mapping[str, Any], retry: float
    ) -> None:
        super().__init__(status, code, detail, body)
        self.retry_after_s = retry


class LimitReached(StreamLimitError):
    """409 ``stream_limit_reached``: ``active`` of ``limit`` are playing (streams, or devices when
    ``counts`` is ``"devices"``); ``streams`` are they, with their ``device`` and ``device_id``
    (let the viewer pick one and start again with ``replace=`` its stream id, or with
    ``on_limit="evict_oldest"``)."""

    def __init__(self, status: int, code: str | None, detail: str, body: Mapping[str, Any]) -> None:
        super().__init__(status, code, detail, body)
        self.active: int = body["active"]
        self.limit: int = body["limit"]
        self.counts: str = body.get("counts") or "streams"
        self.streams = tuple(StreamInfo.parse(s) for s in body["streams"])


class StreamNotActive(StreamLimitError):
    """404 ``stream_not_active``: the stream expired, was stopped or never existed; stop playback.
    :class:`StreamEvicted`, :class:`StreamReplaced` and :class:`StreamStopped` are subclasses, so
    catching this catches every lost lease."""


class ReplaceTargetNotActive(StreamNotActive):
    """404 ``stream_not_active`` with ``field: "replace"``, answering a start: the stream it named
    to replace (``stream_id``) is not active any more, and nothing was started. List the streams
    again and let the viewer choose anew (or start without ``replace``)."""

    def __init__(self, status: int, code: str | None, detail: str, body: Mapping[str, Any]) -> None:
        super().__init__(status, code, detail, body)
        self.stream_id: str | None = body.get("stream_id")


class StreamEvicted(StreamNotActive):
    """410 ``stream_evicted``: another device of the account took this stream's slot at
    ``evicted_at``; ``replaced_by`` is that device's stream id."""

    def __init__(self, status: int, code: str | None, detail: str, body: Mapping[str, Any]) -> None:
        super().__init__(status, code, detail, body)
        self.replaced_by: str | None = body.get("replaced_by")
        at = body.get("evicted_at")
        self.evicted_at: datetime | None = parse_time(at) if isinstance(at, str) else None


class StreamReplaced(StreamNotActive):
    """410 ``stream_replaced``: a newer stream of the same device (the same ``device_id``: this
    player, restarted) took this stream's slot at ``replaced_at``; ``replaced_by`` is its stream
    id. Stop this playback: the newer one is the device's stream now."""

    def __init__(self, status: int, code: str | None, detail: str, body: Mapping[str, Any]) -> None:
        super().__init__(status, code, detail, body)
        self.replaced_by: str | None = body.get("replaced_by")
        at = body.get("replaced_at")
        self.replaced_at: datetime | None = parse_time(at) if isinstance(at, str) else None


class StreamStopped(StreamNotActive):
    """410 ``stream_stopped``: the stream was stopped at ``stopped_at``, by its own player, by
    "sign out of all devices" or by an operator (``reason``: ``stopped``, ``stopped_all``,
    ``stopped_by_admin``); stop playback, and do not start again on your own."""

    def __init__(self, status: int, code: str | None, detail: str, body: Mapping[str, Any]) -> None:
        super().__init__(status, code, detail, body)
        self.reason: str | None = body.get("reason")
        at = body.get("stopped_at")
        self.stopped_at: datetime | None = parse_time(at) if isinstance(at, str) else None


class InvalidInput(StreamLimitError):
    """422: a value the service does not accept (``invalid_id``, ``invalid_body``,
    ``invalid_query``, ``unknown_plan``); ``field`` names it (e.g. ``device_id``, ``replace``)."""

    def __init__(self, status: int, code: str | None, detail: str, body: Mapping[str, Any]) -> None:
        super().__init__(status, code, detail, body)
        field = body.get("field")
        self.field: str | None = field if isinstance(field, str) else None


class Unauthenticated(StreamLimitError):
    """401 ``unauthenticated``: no credentials, or a token or key that does not verify."""


class Forbidden(StreamLimitError):
    """403 ``forbidden``: valid credentials that may not do this (another user, an admin action)."""


class LeaseLost(StreamLimitError):
    """Raised from ``async with client.stream(...)`` (and the sync ``with``) when its lease was lost
    while the body ran. ``reason`` (also ``__cause__``) is the error that ended it, usually
    :class:`StreamNotActive` or :class:`StreamEvicted`."""

    def __init__(self, reason: StreamLimitError) -> None:
        super().__init__(reason.status, reason.code, f"lease lost: {reason.detail}", reason.body)
        self.reason = reason


_BY_CODE: dict[str, type[StreamLimitError]] = {
    "stream_limit_reached": LimitReached,
    "stream_not_active": StreamNotActive,
    "stream_evicted": StreamEvicted,
    "stream_stopped": StreamStopped,
    "stream_replaced": StreamReplaced,
    "too_many_starts": TooManyStarts,
    "unauthenticated": Unauthenticated,
    "forbidden": Forbidden,
    "store_unavailable": Unavailable,
}
_BY_STATUS: dict[int, type[StreamLimitError]] = {
    401: Unauthenticated,
    403: Forbidden,
    422: InvalidInput,
    429: TooManyStarts,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:  # absent, or an HTTP date (which this service never sends)
        return None


def error_from(response: httpx.Response) -> StreamLimitError:
    """The exception for an error ``response`` (status >= 400), from its problem code and status."""
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    return problem_error(response.status_code, body, response.reason_phrase, _retry_after(response))


def problem_error(
    status: int, body: Mapping[str, Any], reason: str = "", retry: float | None = None
) -> StreamLimitError:
    """The exception for a problem ``body`` answered with ``status`` (also a live channel's last
    event, whose data is the problem a heartbeat would have answered)."""
    code = body.get("code") if isinstance(body.get("code"), str) else None
    detail = str(body.get("detail") or reason or "error")
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status) or StreamLimitError
    if cls is StreamNotActive and body.get("field") == "replace":  # a start's target, not its stream
        cls = ReplaceTargetNotActive
    try:
        if cls is Unavailable:
            return Unavailable(status, code, detail, body, retry)
        if cls is TooManyStarts:
            return TooManyStarts(status, code, detail, body, retry if retry is not None else 1.0)
        return cls(status, code, detail, body)
    except (KeyError, TypeError, ValueError):  # a body without the members its code promises
        return StreamLimitError(status, code, detail, body)
