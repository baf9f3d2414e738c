"""The v1 API for accounts: /v1/users/{user_id}/limit, /plan and /events."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from streamlimit.api.bodies import json_object
from streamlimit.api.guard import admin, for_user
from streamlimit.api.problems import Problem
from streamlimit.api.render import JSON, json, rfc3339
from streamlimit.api.routing import resource, service_of
from streamlimit.ids import MAX_LIMIT
from streamlimit.models import Event, LimitInfo


def _limit_body(info: LimitInfo) -> JSON:
    return json(
        {
            "user_id": info.user_id,
            "limit": info.limit,
            "default": info.is_default,
            "limit_source": info.source,
            "plan": info.plan,
        }
    )


async def get_limit(request: Request) -> Response:
    user_id = request.path_params["user_id"]
    return _limit_body(await service_of(request).get_limit(user_id, for_user(request, user_id)))


async def put_limit(request: Request) -> Response:
    user_id = request.path_params["user_id"]
    who = admin(request, user_id)
    body = await json_object(request, ("limit",))
    limit = body.get("limit")
    if type(limit) is not int:  # bool is an int subclass: reject it too
        raise Problem(422, "invalid_body", f"limit must be an integer from 0 to {MAX_LIMIT}", field="limit")
    return _limit_body(await service_of(request).set_limit(user_id, limit, who))


async def clear_limit(request: Request) -> Response:
    user_id = request.path_params["user_id"]
    return _limit_body(await service_of(request).set_limit(user_id, None, admin(request, user_id)))


async def put_plan(request: Request) -> Response:
    user_id = request.path_params["user_id"]
    who = admin(request, user_id)
    body = await json_object(request, ("plan",))
    plan = body.get("plan")
    if not isinstance(plan, str):
        raise Problem(422, "invalid_body", "plan must be the name of a configured plan", field="plan")
    return _limit_body(await service_of(request).set_plan(user_id, plan, who))


async def clear_plan(request: Request) -> Response:
    user_id = request.path_params["user_id"]
    return _limit_body(await service_of(request).set_plan(user_id, None, admin(request, user_id)))


def _event_body(e: Event, operator_view: bool) -> dict[str, Any]:
    """An event; the account's own players see an operator's action as its role only."""
    by = e.actor if operator_view else e.actor.as_seen_by_player()
    out: dict[str, Any] = {"at": rfc3339(e.at_ms), "action": e.action, "actor": by.name, "role": by.role}
    if by.credential is not None:
        out["credential"] = by.credential
    if by.request_id is not None:
        out["request_id"] = by.request_id
    if by.client is not None:
        out["client"] = by.client
    out["streams"] = list(e.streams)
    if e.value is not None:
        out["value"] = e.value
    if e.device_id is not None:
        out["device_id"] = e.device_id
    return out


async def events(request: Request) -> Response:
    user_id = request.path_params["user_id"]
    who = for_user(request, user_id)
    found = await service_of(request).events(user_id, who)
    return json({"user_id": user_id, "events": [_event_body(e, who.admin) for e in found]})


ROUTES = [
    resource(
        "/v1/users/{user_id}/limit",
        get=("limit_get", get_limit),
        put=("limit_set", put_limit),
        delete=("limit_clear", clear_limit),
    ),
    resource("/v1/users/{user_id}/plan", put=("plan_set", put_plan), delete=("plan_clear", clear_plan)),
    resource("/v1/users/{user_id}/events", get=("events", events)),
]
