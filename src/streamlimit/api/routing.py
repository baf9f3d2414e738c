"""One route per resource, dispatching on the method, so a 405 lists every allowed method.

Each method's handler comes with its metric label (``post=("start", start)``): the route table
is the one place a route and its label are named, and the label travels in the request's
scope to the metrics middleware (api/observe.py), with the outcome when a handler knows better
than the status (an admission that evicted a stream)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from streamlimit.api.problems import HANDLERS
from streamlimit.grants.issuer import GrantIssuer
from streamlimit.service import StreamService

Endpoint = Callable[[Request], Awaitable[Response]]
Labelled = tuple[str, Endpoint]  # (metric label, handler)
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]
ROUTE_LABEL = "streamlimit.route"  # scope keys read by api.observe
OUTCOME = "streamlimit.outcome"


def service_of(request: Request) -> StreamService:
    """The app's service, built by the lifespan."""
    service: StreamService = request.app.state.service
    return service


def grants_of(request: Request) -> GrantIssuer | None:
    """The app's grant issuer; None when no grant key is configured (answers carry no grant)."""
    grants: GrantIssuer | None = request.app.state.grants
    return grants


class _Resource:
    """A resource as a plain ASGI app: the method's handler, and on a domain error the
    problem it maps to (``api.problems.HANDLERS``). Starlette's function endpoints would add
    three nested layers per request (``request_response`` and its exception wrapper), each
    resumed again after every store round trip; anything unmapped still reaches Starlette's
    own handlers outside."""

    def __init__(self, table: dict[str, Labelled], allow: str) -> None:
        self.table, self.allow = table, allow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            labelled = self.table.get(request.method)
            if labelled is None:
                raise HTTPException(405, headers={"Allow": self.allow})
            scope[ROUTE_LABEL], handler = labelled
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


def resource(path: str, **handlers: Labelled) -> Route:
    """``resource("/x", get=("x_get", read), put=("x_set", write))``: HEAD follows GET (and
    counts as it); other methods get 405 + Allow."""
    table = {method.upper(): labelled for method, labelled in handlers.items()}
    if "GET" in table:
        table.setdefault("HEAD", table["GET"])
    return Route(path, _Resource(table, ", ".join(table)), methods=list(table))


def labels(routes: Iterable[BaseRoute]) -> set[str]:
    """Every route label of these routes (requests outside them count as ``other``)."""
    return {
        label
        for route in routes
        if isinstance(route, Route) and isinstance(route.app, _Resource)
        for label, _ in route.app.table.values()
    }


def count_as(request: Request, outcome: str) -> None:
    """The outcome the metrics record for this request, when its status alone does not say."""
    request.scope[OUTCOME] = outcome
