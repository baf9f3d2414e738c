"""Signing grants: a compact JWS bound to one lease, for the service's start and heartbeat answers.

A grant's claims are ``iss``, ``aud``, ``sub`` (user), ``sid`` (stream), ``epoch`` (the lease's
own), ``lim`` (the user's limit), ``iat``, ``exp`` (the lease's expiry, rounded down: never later)
and ``jti``; a degraded one (store down, ``GRANT_WHEN_DEGRADED``) has ``epoch`` null, a short
``exp`` and ``deg: true``. Signing is on the hot path: the header segment of each key is encoded
once, the claims with msgspec, and the signature is cryptography's (bench/grants.py measures it).
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from streamlimit.grants.keys import SigningKey, b64url, jwks, load_keys
from streamlimit.models import Stream

if TYPE_CHECKING:
    from streamlimit.settings import Settings

_encode = msgspec.json.encode


class GrantIssuer:
    """Signs grants with the first of ``keys``; publishes every key's public half (``jwks``), so
    grants signed by a key that is no longer first still verify until they expire."""

    def __init__(
        self,
        keys: Sequence[SigningKey],
        issuer: str,
        audience: str,
        lease_ttl_s: float,
        *,
        when_degraded: bool = False,
        degraded_ttl_s: float = 60,
    ) -> None:
        if not keys:
            raise ValueError("a grant issuer needs a key")
        self.keys = tuple(keys)
        self.signer = self.keys[0]
        self.issuer, self.audience = issuer, audience
        self.lease_ttl_ms = round(lease_ttl_s * 1000)
        self.when_degraded = when_degraded
        self.degraded_ttl_ms = round(min(degraded_ttl_s, lease_ttl_s) * 1000)
        header = {"alg": self.signer.alg, "kid": self.signer.kid, "typ": "JWT"}
        self._header = b64url(_encode(header)).encode() + b"."
        self.jwks: dict[str, Any] = jwks(self.keys)
        # jti: unique without a system call per grant (a random prefix of this issuer, a counter)
        self._jti_prefix, self._jti_counter = secrets.token_urlsafe(9), itertools.count()
        self.jwks_body = _encode(self.jwks)  # served as is

    @classmethod
    def from_settings(cls, settings: Settings) -> GrantIssuer | None:
        """The issuer of ``STREAMLIMIT_GRANT_*``, or None when no key is configured (no grants)."""
        if not settings.grant_key_file:
            return None
        return cls(
            load_keys(settings.grant_key_file),
            settings.grant_issuer,
            settings.grant_audience,
            settings.lease_ttl_s,
            when_degraded=settings.grant_when_degraded,
            degraded_ttl_s=settings.grant_degraded_ttl_s,
        )

    def grant(self, stream: Stream, limit: int | None, degraded: bool = False) -> str | None:
        """The grant of a lease just admitted, renewed or heartbeated; None for a degraded answer
        (unless ``when_degraded``), or when the user's limit is not known."""
        if limit is None:
            return None
        if degraded:
            if not self.when_degraded:
                return None
            # nothing was recorded: no epoch, and a grant that lasts only until a heartbeat or two
            now_ms = time.time_ns() // 1_000_000  # the store's clock is gone with the store
            exp_ms = min(stream.expires_at_ms, now_ms + self.degraded_ttl_ms)
            return self._sign(stream, None, limit, now_ms, exp_ms, True)
        # the store's clock throughout: the lease's expiry is its time of the answer plus the TTL
        return self._sign(stream, stream.epoch, limit, stream.expires_at_ms - self.lease_ttl_ms,
                          stream.expires_at_ms, False)  # fmt: skip

    def _sign(
        self, stream: Stream, epoch: int | None, limit: int, now_ms: int, exp_ms: int, degraded: bool
    ) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": stream.user_id,
            "sid": stream.stream_id,
            "epoch": epoch,
            "lim": limit,
            "iat": min(now_ms, exp_ms) // 1000,
            "exp": exp_ms // 1000,  # rounded down: a grant never outlives its lease
            "jti": f"{self._jti_prefix}{next(self._jti_counter):x}",
        }
        if degraded:
            claims["deg"] = True
        signing_input = self._header + b64url(_encode(claims)).encode()
        return f"{signing_input.decode('ascii')}.{b64url(self.signer.sign(signing_input))}"
