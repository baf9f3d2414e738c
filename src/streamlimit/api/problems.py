"""RFC 9457 problem+json responses with a stable ``code`` member, and the exception handlers."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from streamlimit.api.render import rfc3339
from streamlimit.errors import (
    ChannelsFull,
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
    Unauthenticated,
    UnknownPlan,
)

log = logging.getLogger("streamlimit.api")

RETRY_AFTER_S = "1"


class Problem(Exception):
    """Raise to answer with a problem; ``extra`` members are added to the body."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra
        self.headers: dict[str, str] = {}


def problem_body(
    instance: str, status: int, code: str, detail: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:streamlimit:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
    }
    if extra:
        body.update(extra)
    return body


def problem_response(
    request: Request,
    status: int,
    code: str,
    detail: str,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = problem_body(request.url.path, status, code, detail, extra)
    return Response(msgspec.json.encode(body), status, headers, media_type="application/problem+json")


def store_unavailable(request: Request, exc: StoreUnavailable) -> Response:
    log.debug("store unavailable: %s", exc)
    return problem_response(
        request,
        503,
        "store_unavailable",
        "the stream store is unavailable; retry shortly",
        headers={"Retry-After": RETRY_AFTER_S},
    )


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(request, exc.status, exc.code, exc.detail, exc.extra, exc.headers)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return problem_response(request, exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _store(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreUnavailable)
    return store_unavailable(request, exc)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidInput)
    code = "invalid_id" if isinstance(exc, InvalidId) else "invalid_body"
    return problem_response(request, 422, code, str(exc), {"field": exc.field})


Fields = tuple[int, str, str, dict[str, Any]]  # status, code, detail, extra members


def ended_fields(exc: StreamNotActive) -> Fields:
    """The problem of a stream that is not active (404), or ended within a lease TTL (410: evicted,
    replaced, stopped): a heartbeat's answer, and the data of a live channel's last event."""
    ids = {"user_id": exc.user_id, "stream_id": exc.stream_id}
    if isinstance(exc, StreamEvicted):
        detail = "another device of this account started watching in this stream's place: stop playback"
        extra = {"evicted_at": rfc3339(exc.evicted_at_ms), "replaced_by": exc.replaced_by}
        return 410, "stream_evicted", detail, ids | extra
    if isinstance(exc, StreamReplaced):
        detail = "a newer stream of the same device took this stream's place: stop playback"
        extra = {"replaced_at": rfc3339(exc.replaced_at_ms), "replaced_by": exc.replaced_by}
        return 410, "stream_replaced", detail, ids | extra
    if isinstance(exc, StreamStopped):
        detail = f"{_STOPPED_BY.get(exc.reason, 'this stream was stopped')}: stop playback"
        extra = {"stopped_at": rfc3339(exc.stopped_at_ms), "reason": exc.reason}
        return 410, "stream_stopped", detail, ids | extra
    detail = "the stream is not active (expired, stopped or unknown): stop playback"
    return 404, "stream_not_active", detail, ids


_STOPPED_BY = {
    "stopped": "this stream was stopped by its player",
    "stopped_all": "this account signed out of all devices",
    "stopped_by_admin": "an operator stopped this stream",
}


async def _not_active(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StreamNotActive)
    return problem_response(request, *ended_fields(exc))


async def _target_not_active(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ReplaceTargetNotActive)
    return problem_response(
        request,
        404,
        "stream_not_active",
        f"the stream to replace, {exc.stream_id!r}, is not active: nothing was started",
        {"user_id": exc.user_id, "stream_id": exc.stream_id, "field": "replace"},
    )


CHANNELS_RETRY_AFTER_S = "5"


async def _channels_full(request: Request, exc: Exception) -> Response:
    detail = f"{exc}; meanwhile, heartbeats keep the lease"
    headers = {"Retry-After": CHANNELS_RETRY_AFTER_S}
    return problem_response(request, 503, "too_many_channels", detail, headers=headers)


async def _unknown_plan(request: Request, exc: Exception) -> Response:
    return problem_response(request, 422, "unknown_plan", str(exc), {"field": "plan"})


def _budget_spent(code: str, what: str) -> Callable[[Request, Exception], Awaitable[Response]]:
    """429 with Retry-After for a per-user budget (starts, stop-alls) that is spent."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TooManyStarts | TooManyStopAlls)
        retry_s = max(1, math.ceil(exc.retry_after_ms / 1000))
        return problem_response(
            request,
            429,
            code,
            f"this account {what} in the last minute; retry in {retry_s} s",
            {"retry_after_s": retry_s},
            headers={"Retry-After": str(retry_s)},
        )

    return handler


async def _unauthenticated(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Unauthenticated)
    scheme: str = request.app.state.auth.scheme
    presented = scheme.startswith("Bearer") and "authorization" in request.headers
    challenge = f'{scheme}, error="invalid_token"' if presented else scheme
    return problem_response(
        request, 401, "unauthenticated", str(exc), headers={"WWW-Authenticate": challenge}
    )


async def _forbidden(request: Request, exc: Exception) -> Response:
    return problem_response(request, 403, "forbidden", str(exc))


async def _disconnected(request: Request, exc: Exception) -> Response:
    # the client is gone: nobody will read this, and it is not our error
    return problem_response(request, 400, "client_disconnected", "the client closed the request")


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this response, and the server logs the traceback once
    return problem_response(request, 500, "internal_error", "internal error")


HANDLERS = {
    Problem: _problem,
    HTTPException: _http,
    StoreUnavailable: _store,
    InvalidInput: _invalid,
    StreamNotActive: _not_active,
    ReplaceTargetNotActive: _target_not_active,
    TooManyStarts: _budget_spent("too_many_starts", "started too many streams"),
    TooManyStopAlls: _budget_spent("too_many_stop_alls", "signed out of all devices too often"),
    UnknownPlan: _unknown_plan,
    ChannelsFull: _channels_full,
    Unauthenticated: _unauthenticated,
    Forbidden: _forbidden,
    ClientDisconnect: _disconnected,
    Exception: _unexpected,
}
