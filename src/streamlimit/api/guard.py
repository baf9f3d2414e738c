"""Authentication and authorization of a request, from the app's authenticator."""

from __future__ import annotations

from starlette.requests import Request

from streamlimit.api.client_address import client_address
from streamlimit.auth import ANONYMOUS, Authenticator, Principal
from streamlimit.service import Caller


def authenticator_of(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


def caller(request: Request) -> Principal:
    """The caller, or ``Unauthenticated`` (401)."""
    return authenticator_of(request).authenticate(request.headers)


def as_caller(request: Request, principal: Principal, user_id: str) -> Caller:
    """The rules' view: the name for the audit trail, the token's plan, whether this is someone
    acting on another user's account (an admin token or an API key), and what the audit trail
    records of the request: the credential, the request id, the client's address."""
    other = principal is not ANONYMOUS and principal.subject != user_id
    # a plan claim describes the token's own user; an admin's says nothing about others
    return Caller(
        principal.name,
        None if other else principal.plan,
        admin=other,
        credential=principal.credential,
        request_id=request.scope.get("state", {}).get("request_id"),
        client=client_address(request, request.app.state.trusted_proxies),
    )


def for_user(request: Request, user_id: str) -> Caller:
    """A caller allowed to act on ``user_id``'s streams, or ``Forbidden`` (403)."""
    principal = caller(request)
    principal.may_act_for(user_id)
    return as_caller(request, principal, user_id)


def admin(request: Request, user_id: str) -> Caller:
    principal = caller(request)
    principal.may_administer()
    return as_caller(request, principal, user_id)
