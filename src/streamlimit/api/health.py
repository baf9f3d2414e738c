"""Liveness and readiness."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from streamlimit.api.render import json
from streamlimit.api.routing import resource, service_of


async def healthz(request: Request) -> Response:
    return json({"status": "ok"})


async def readyz(request: Request) -> Response:
    await service_of(request).store.ping()  # StoreUnavailable -> 503 store_unavailable
    return json({"status": "ready"})


ROUTES = [resource("/healthz", get=healthz), resource("/readyz", get=readyz)]
