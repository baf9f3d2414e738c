"""The v1 API for players: /v1/users/{user_id}/streams (accounts.py has limits, plans, events)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from streamlimit.api.bodies import json_object, optional_str
from streamlimit.api.guard import for_user
from streamlimit.api.problems import Problem
from streamlimit.api.render import json, stream_body, streams_body
from streamlimit.api.routing import count_as, grants_of, resource, service_of
from streamlimit.models import StartStatus, Stream
from streamlimit.service import StreamService

DEGRADED = {"X-StreamLimit-Degraded": "1"}


def _one_query(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise Problem(422, "invalid_query", f"{name} may be given once", field=name)
    return values[0] if values else None


def _lease_body(service: StreamService, stream: Stream, degraded: bool) -> dict[str, Any]:
    return {
        **stream_body(stream),
        "heartbeat_interval_s": service.policy.heartbeat_interval_s,
        "lease_ttl_s": service.policy.lease_ttl_ms / 1000,
        "degraded": degraded,
    }


async def start(request: Request) -> Response:
    service = service_of(request)
    user_id = request.path_params["user_id"]
    who = for_user(request, user_id)
    on_limit = _one_query(request, "on_limit")
    if on_limit not in (None, "reject", "evict_oldest"):
        raise Problem(422, "invalid_query", "on_limit must be reject or evict_oldest", field="on_limit")
    body = await json_object(request, ("stream_id", "device", "device_id"))
    stream_id, device = optional_str(body, "stream_id"), optional_str(body, "device")
    result = await service.start(
        user_id,
        stream_id,
        device,
        on_limit=on_limit,
        caller=who,
        device_id=optional_str(body, "device_id"),
        replace=_one_query(request, "replace"),
    )
    counts = service.policy.limit_counts
    limit = {
        "limit": result.limit,
        "limit_source": result.limit_source,
        "plan": result.plan,
        "counts": counts,
    }
    if result.status is StartStatus.REFUSED:
        raise Problem(
            409,
            "stream_limit_reached",
            f"user {user_id!r} already has {result.active} of {result.limit} {counts} active",
            active=result.active,
            **limit,
            streams=[stream_body(s) for s in result.streams],
        )
    assert result.stream is not None
    out = {
        **_lease_body(service, result.stream, result.degraded),
        "active": result.active,
        **limit,
        "epoch": result.epoch,
        "evicted": stream_body(result.evicted[0]) if result.evicted else None,
        "evicted_streams": [stream_body(s) for s in result.evicted],
        "replaced_streams": [stream_body(s) for s in result.replaced],
    }
    if (grants := grants_of(request)) is not None:
        out["grant"] = grants.grant(result.stream, result.limit, result.degraded)
    if result.degraded:
        return json(out, 200, DEGRADED)
    if result.replaced:
        count_as(request, "replaced")  # the same device started again
    if result.evicted:
        count_as(request, "evicted")  # an admission that took the place of another stream
    if result.status is StartStatus.ADMITTED:
        return json(out, 201, {"Location": f"/v1/users/{user_id}/streams/{result.stream.stream_id}"})
    return json(out)


async def heartbeat(request: Request) -> Response:
    service = service_of(request)
    p = request.path_params
    who = for_user(request, p["user_id"])
    grants = grants_of(request)
    result = await service.heartbeat(p["user_id"], p["stream_id"], who, with_limit=grants is not None)
    if result.readmitted:
        count_as(request, "readmitted")  # an admission after an outage or a sleep
    out = {**_lease_body(service, result.stream, result.degraded), "readmitted": result.readmitted}
    if grants is not None:
        out["grant"] = grants.grant(result.stream, result.limit, result.degraded)
    return json(out, headers=DEGRADED if result.degraded else None)


async def get_stream(request: Request) -> Response:
    p = request.path_params
    who = for_user(request, p["user_id"])
    return json(stream_body(await service_of(request).get(p["user_id"], p["stream_id"], who)))


async def stop(request: Request) -> Response:
    p = request.path_params
    who = for_user(request, p["user_id"])
    result = await service_of(request).stop(p["user_id"], p["stream_id"], who)
    return Response(status_code=204, headers=DEGRADED if result.degraded else None)


async def list_streams(request: Request) -> Response:
    who = for_user(request, request.path_params["user_id"])
    user = await service_of(request).list(request.path_params["user_id"], who)
    return json(streams_body(user))


async def stop_all(request: Request) -> Response:
    who = for_user(request, request.path_params["user_id"])
    stopped = await service_of(request).stop_all(request.path_params["user_id"], who)
    return json({"stopped": stopped})


ROUTES = [
    resource(
        "/v1/users/{user_id}/streams",
        post=("start", start),
        get=("list", list_streams),
        delete=("stop_all", stop_all),
    ),
    resource("/v1/users/{user_id}/streams/{stream_id}/heartbeat", post=("heartbeat", heartbeat)),
    resource(
        "/v1/users/{user_id}/streams/{stream_id}", get=("get_stream", get_stream), delete=("stop", stop)
    ),
]
