"""Authentication and authorization of a request, from the app's authenticator."""

from __future__ import annotations

from starlette.requests import Request

from streamlimit.auth import Authenticator, Principal


def authenticator_of(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


def caller(request: Request) -> Principal:
    """The caller, or ``Unauthenticated`` (401)."""
    return authenticator_of(request).authenticate(request.headers)


def for_user(request: Request, user_id: str) -> Principal:
    """A caller allowed to act on ``user_id``'s streams, or ``Forbidden`` (403)."""
    principal = caller(request)
    principal.may_act_for(user_id)
    return principal


def admin(request: Request) -> Principal:
    principal = caller(request)
    principal.may_administer()
    return principal
