"""One route per resource, dispatching on the method, so a 405 lists every allowed method."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from streamlimit.api.problems import HANDLERS
from streamlimit.service import StreamService

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


def service_of(request: Request) -> StreamService:
    """The app's service, built by the lifespan."""
    service: StreamService = request.app.state.service
    return service


class _Resource:
    """A resource as a plain ASGI app: the method's handler, and on a domain error the
    problem it maps to (``api.problems.HANDLERS``). Starlette's function endpoints would add
    three nested layers per request (``request_response`` and its exception wrapper), each
    resumed again after every store round trip; anything unmapped still reaches Starlette's
    own handlers outside."""

    def __init__(self, table: dict[str, Endpoint], allow: str) -> None:
        self.table, self.allow = table, allow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            handler = self.table.get(request.method)
            if handler is None:
                raise HTTPException(405, headers={"Allow": self.allow})
            response = await handler(request)
        except Exception as exc:
            problem = _problem_for(exc)
            if problem is None:
                raise
            response = await problem(request, exc)
            exc.__traceback__ = None  # handled: keep no frames alive (as Starlette does)
        await response(scope, receive, send)


def _problem_for(exc: Exception) -> ErrorHandler | None:
    """The handler of the nearest class of ``exc`` that has one (``Exception``'s own, for
    unexpected errors, stays with Starlette's ServerErrorMiddleware, which logs them)."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in HANDLERS:
            return HANDLERS[cls]
    return None


def resource(path: str, **handlers: Endpoint) -> Route:
    """``resource("/x", get=read, put=write)``: HEAD follows GET; other methods get 405 + Allow."""
    table = {method.upper(): handler for method, handler in handlers.items()}
    if "GET" in table:
        table.setdefault("HEAD", table["GET"])
    return Route(path, _Resource(table, ", ".join(table)), methods=list(table))
