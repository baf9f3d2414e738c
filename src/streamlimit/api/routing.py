"""One route per resource, dispatching on the method, so a 405 lists every allowed method."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamlimit.service import StreamService

Endpoint = Callable[[Request], Awaitable[Response]]


def service_of(request: Request) -> StreamService:
    """The app's service, built by the lifespan."""
    service: StreamService = request.app.state.service
    return service


def resource(path: str, **handlers: Endpoint) -> Route:
    """``resource("/x", get=read, put=write)``: HEAD follows GET; other methods get 405 + Allow."""
    table = {method.upper(): handler for method, handler in handlers.items()}
    if "GET" in table:
        table.setdefault("HEAD", table["GET"])
    allow = ", ".join(table)

    async def dispatch(request: Request) -> Response:
        handler = table.get(request.method)
        if handler is None:
            raise HTTPException(405, headers={"Allow": allow})
        return await handler(request)

    return Route(path, dispatch, methods=list(table))
