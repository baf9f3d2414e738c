"""The original service's API (/user/stream), kept for its clients, on the same rules."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from streamlimit.api.bodies import Members, parse_json, read_body
from streamlimit.api.guard import as_caller, caller
from streamlimit.api.problems import RETRY_AFTER_S, Problem, problem_response
from streamlimit.api.render import json
from streamlimit.api.routing import Endpoint, count_as, resource, service_of
from streamlimit.api.v1 import DEGRADED
from streamlimit.errors import StoreUnavailable, TooManyStarts
from streamlimit.ids import ID_RULE, is_valid_id
from streamlimit.models import StartStatus


def _bad(message: str, field: str = "userId") -> Problem:
    return Problem(400, "invalid_request", message, message=message, field=field)


def _one(values: list[Any], name: str, required: bool) -> str | None:
    """The single value of ``name``: a string, or a JSON integer taken as its decimal text."""
    if not values or values == [None]:
        if required:
            raise _bad(f"{name} is required", name)
        return None
    if len(values) > 1:
        raise _bad(f"{name} must be given once", name)
    value = values[0]
    if type(value) is int:
        value = str(value)
    if not isinstance(value, str):
        raise _bad(f"{name} must be a string", name)
    if not is_valid_id(value):
        raise _bad(f"{name} must be {ID_RULE}", name)
    return value


async def _fields(request: Request) -> dict[str, list[Any]]:
    """JSON or form body -> every member as a list of values (repeats stay visible)."""
    raw = await read_body(request)
    ctype = request.headers.get("content-type", "")
    # curl -d sends JSON labelled as a form; a form body never starts with "{"
    if ctype.startswith("application/x-www-form-urlencoded") and not raw.lstrip().startswith(b"{"):
        return {k: list(v) for k, v in parse_qs(raw.decode("latin-1"), keep_blank_values=True).items()}
    if not raw.strip():
        return {}
    try:
        body = parse_json(raw)
    except Problem:
        raise _bad("body is not valid JSON", "body") from None
    if not isinstance(body, Members):
        raise _bad("body must be a JSON object with userId")
    fields: dict[str, list[Any]] = {}
    for key, value in body:
        fields.setdefault(key, []).append(value)
    return fields


async def count(request: Request) -> Response:
    principal = caller(request)  # 401 before the query is looked at
    user_id = _one(request.query_params.getlist("userId"), "userId", True)
    assert user_id is not None
    principal.may_act_for(user_id)
    user = await service_of(request).list(user_id, as_caller(request, principal, user_id))
    exhausted = user.active >= user.limit
    message = (
        f"Warning: quota of max {user.limit} streams per user exhausted"
        if exhausted
        else f"User {user_id} has {user.active} active stream(s)"
    )
    return json(
        {
            "message": message,
            "activeStreams": user.active,
            "limit": user.limit,
            "quotaExhausted": exhausted,
        }
    )


async def add(request: Request) -> Response:
    principal = caller(request)  # 401 before the body is even read
    fields = await _fields(request)
    user_id = _one(fields.get("userId", []), "userId", True)
    stream_id = _one(fields.get("streamId", []), "streamId", False)
    assert user_id is not None
    principal.may_act_for(user_id)
    result = await service_of(request).start(
        user_id, stream_id, legacy=True, caller=as_caller(request, principal, user_id)
    )
    if result.status is StartStatus.REFUSED:
        return json(
            {
                "message": f"Quota of max {result.limit} per user exceeded",
                "activeStreams": result.active,
                "limit": result.limit,
            },
            403,
        )
    assert result.stream is not None
    body = {
        "message": "Stream added successfully",
        "activeStreams": result.active,
        "streamId": result.stream.stream_id,
    }
    if result.degraded:
        return json({**body, "degraded": True}, headers=DEGRADED)
    if result.evicted:  # STREAMLIMIT_ON_LIMIT=evict_oldest
        count_as(request, "evicted")
    return json(body)


async def remove(request: Request) -> Response:
    principal = caller(request)  # 401 before the body is even read
    fields = await _fields(request)
    user_id = _one(fields.get("userId", []), "userId", True)
    stream_id = _one(fields.get("streamId", []), "streamId", False)
    assert user_id is not None
    principal.may_act_for(user_id)
    result = await service_of(request).stop(user_id, stream_id, as_caller(request, principal, user_id))
    if result.degraded:
        return json(
            {"message": "Stream removed successfully", "activeStreams": None, "degraded": True},
            headers=DEGRADED,
        )
    if result.removed is None:
        if stream_id is not None:
            return json({"message": "Stream not found", "activeStreams": result.active}, 404)
        return json({"message": "Operation failed! - You have 0 stream active"}, 403)
    return json(
        {
            "message": "Stream removed successfully",
            "activeStreams": result.active,
            "streamId": result.removed.stream_id,
        }
    )


def _unavailable_with_message(handler: Endpoint) -> Endpoint:
    """The original clients read ``message``; outage and start-budget answers carry one too."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except TooManyStarts as exc:
            retry_s = max(1, math.ceil(exc.retry_after_ms / 1000))
            message = f"Too many streams started in the last minute, try again in {retry_s} s"
            return problem_response(
                request, 429, "too_many_starts", message, {"message": message, "retry_after_s": retry_s},
                {"Retry-After": str(retry_s)},
            )  # fmt: skip
        except StoreUnavailable:
            message = "The stream store is unavailable, please try again shortly"
            return problem_response(
                request,
                503,
                "store_unavailable",
                message,
                {"message": message},
                {"Retry-After": RETRY_AFTER_S},
            )

    return wrapped


ROUTES = [
    resource(
        "/user/stream",
        get=("compat_count", _unavailable_with_message(count)),
        post=("compat_add", _unavailable_with_message(add)),
        delete=("compat_remove", _unavailable_with_message(remove)),
    )
]
