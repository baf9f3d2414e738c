"""The caller, as the rules see it, and the authenticator for the configured mode."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from streamlimit.errors import Forbidden, Unauthenticated
from streamlimit.settings import Settings


@dataclass(frozen=True, slots=True)
class Principal:
    name: str  # for logs and the audit trail: a token's subject or an API key's name
    subject: str | None  # the one user a player's token acts for; None: any user it may
    admin: bool  # may change limits and act on any user
    any_user: bool
    plan: str | None = None
    credential: str | None = None  # for the audit trail: a token's jti, an API key's name

    def may_act_for(self, user_id: str) -> None:
        if not (self.any_user or self.subject == user_id):
            raise Forbidden("this token may only act on its own user's streams")

    def may_administer(self) -> None:
        if not self.admin:
            raise Forbidden("this needs an admin token (scope streams:admin) or an admin API key")


ANONYMOUS = Principal("anonymous", None, admin=True, any_user=True)  # auth=none


class Authenticator(Protocol):
    scheme: str  # for WWW-Authenticate

    def authenticate(self, headers: Mapping[str, str]) -> Principal: ...


class NoAuth:
    scheme = ""

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return ANONYMOUS


def authenticator_from(settings: Settings) -> Authenticator:
    if settings.auth == "jwt":
        from streamlimit.auth.tokens import JwtAuthenticator

        return JwtAuthenticator(settings)
    if settings.auth == "api_key":
        from streamlimit.auth.api_keys import ApiKeyAuthenticator

        assert settings.api_keys_file is not None
        return ApiKeyAuthenticator.from_file(settings.api_keys_file)
    return NoAuth()


# the longest credential read, checked before any parsing: a bearer token over nginx's 8 KiB header
# line would not pass a proxy in front either; our API keys are 47 characters
MAX_CREDENTIAL_BYTES = {"authorization": 8 * 1024, "x-api-key": 256}


def credential(headers: Mapping[str, str], name: str, prefix: str = "") -> str:
    """The value of header ``name`` after ``prefix`` (case-insensitive), or Unauthenticated."""
    value = headers.get(name)
    if not value:
        raise Unauthenticated(f"missing {name} header")
    if len(value) > MAX_CREDENTIAL_BYTES[name]:
        raise Unauthenticated(f"the {name} header is longer than {MAX_CREDENTIAL_BYTES[name]} bytes")
    if prefix:
        scheme, _, rest = value.partition(" ")
        if scheme.lower() != prefix.lower() or not rest.strip():
            raise Unauthenticated(f"{name} must be '{prefix} <token>'")
        value = rest.strip()
    return value
