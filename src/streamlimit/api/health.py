"""Liveness and readiness."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamlimit.api.problems import problem_response
from streamlimit.api.render import json
from streamlimit.api.routing import resource, service_of
from streamlimit.api.v1 import DEGRADED
from streamlimit.errors import StoreUnavailable
from streamlimit.metrics import Metrics


async def healthz(request: Request) -> Response:
    return json({"status": "ok"})


async def readyz(request: Request) -> Response:
    if request.app.state.draining:
        return problem_response(request, 503, "draining", "shutting down: finishing in-flight requests")
    try:
        await service_of(request).store.ping()
    except StoreUnavailable:  # -> 503 store_unavailable, unless this instance serves without it
        if not request.app.state.ready_without_store:
            raise
        return json({"status": "degraded"}, headers=DEGRADED)
    return json({"status": "ready"})


def metrics_route(metrics: Metrics) -> Route:
    async def scrape(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return resource("/metrics", get=("metrics", scrape))


ROUTES = [resource("/healthz", get=("healthz", healthz)), resource("/readyz", get=("readyz", readyz))]
