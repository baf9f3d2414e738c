"""Development helpers behind ``streamlimit token mint`` and ``streamlimit api-key new``."""

from __future__ import annotations

import time

import jwt

from streamlimit.auth.api_keys import digest, new_key


def mint_token(
    secret: str,
    subject: str,
    scope: str = "streams",
    *,
    ttl_s: int = 3600,
    plan: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 token as ``auth=jwt`` with ``STREAMLIMIT_JWT_SECRET`` accepts it."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": subject, "scope": scope, "iat": now, "nbf": now, "exp": now + ttl_s}
    for name, value in (("plan", plan), ("iss", issuer), ("aud", audience)):
        if value is not None:
            claims[name] = value
    return jwt.encode(claims, secret, algorithm="HS256")


def key_and_line(name: str, admin: bool) -> tuple[str, str]:
    """A new API key and its line for the keys file (which holds only the hash)."""
    key = new_key()
    return key, f"{name} {'admin' if admin else 'service'} {digest(key)}"
