"""Authentication and authorization of a request, from the app's authenticator."""

from __future__ import annotations

from starlette.requests import Request

from streamlimit.api.bodies import refuse_unlabelled_body
from streamlimit.api.client_address import client_address
from streamlimit.api.problems import Problem
from streamlimit.auth import ANONYMOUS, Authenticator, Principal
from streamlimit.service import Caller


def authenticator_of(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


_CREDENTIAL_HEADERS = (b"authorization", b"x-api-key")


def caller(request: Request) -> Principal:
    """The caller, or ``Unauthenticated`` (401); a credential header given twice is a 400, never
    first-wins (a proxy and a client could each think theirs is the one read)."""
    seen: list[bytes] = []
    for name, _ in request.headers.raw:
        if name in _CREDENTIAL_HEADERS:
            if name in seen:
                shown = name.decode()
                raise Problem(400, "duplicate_credentials", f"the {shown} header is given twice", field=shown)
            seen.append(name)
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
    """A caller allowed to act on ``user_id``'s streams, or ``Forbidden`` (403); then a v1 body
    not labelled JSON is a 415 (the compat routes, which take forms, do not come here)."""
    principal = caller(request)
    principal.may_act_for(user_id)
    refuse_unlabelled_body(request.scope["headers"])
    return as_caller(request, principal, user_id)


def admin(request: Request, user_id: str) -> Caller:
    principal = caller(request)
    principal.may_administer()
    refuse_unlabelled_body(request.scope["headers"])
    return as_caller(request, principal, user_id)
