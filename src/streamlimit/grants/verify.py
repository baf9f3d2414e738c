"""Verifying a grant downstream, offline: its signature against the service's JWKS (by ``kid``, so
keys can rotate), ``exp`` and ``nbf`` with a leeway, ``iss``/``aud``, and the fencing rule.

Imports nothing of the server (no Starlette, no store): a licence server, a key server or an edge
verifier needs only this module, PyJWT and cryptography.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt

from streamlimit.grants.fence import EpochFence

ALGORITHMS = ("EdDSA", "ES256")  # what the service signs with; anything else is refused
REQUIRED = ["iss", "aud", "sub", "sid", "lim", "iat", "exp", "jti"]


class GrantRefused(Exception):
    """A grant that must not be honoured. ``reason`` is one of ``malformed``, ``unknown_key``,
    ``bad_signature``, ``wrong_issuer``, ``wrong_audience``, ``invalid_claims``, ``expired``,
    ``not_yet_valid``, ``degraded`` (refused by choice), ``fenced`` (a newer admission of the user
    took its place) or ``keys_unavailable`` (the JWKS could not be fetched)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Grant:
    """A verified grant. Times are seconds since the epoch (the service's store clock)."""

    user_id: str
    stream_id: str
    epoch: int | None  # None when degraded, or for a lease admitted before leases had epochs
    limit: int
    issued_at: int
    expires_at: int
    jti: str
    degraded: bool
    kid: str | None
    claims: Mapping[str, Any]


class KeySource(Protocol):
    def key(self, kid: str | None) -> jwt.PyJWK:
        """The key named ``kid``; ``GrantRefused`` when there is none (or none can be fetched)."""
        ...


class StaticJwks:
    """A JWKS document (a dict, or read once from a file)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        try:
            self._set = jwt.PyJWKSet.from_dict(dict(document))
        except jwt.PyJWTError as exc:
            raise ValueError(f"not a usable JWKS document: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> StaticJwks:
        return cls(json.loads(Path(path).read_text()))

    def key(self, kid: str | None) -> jwt.PyJWK:
        if kid is None and len(self._set.keys) == 1:
            return self._set.keys[0]
        for key in self._set.keys:
            if key.key_id == kid and kid is not None:
                return key
        raise GrantRefused("unknown_key", f"no key {kid!r} in the JWKS")


class RemoteJwks:
    """A JWKS URL (the service's ``/.well-known/jwks.json``), cached for ``max_age_s`` and fetched
    again, at most every ``cooldown_s``, when a grant names a key it does not hold (a rotation)."""

    def __init__(
        self, url: str, max_age_s: float = 300, timeout_s: float = 5, cooldown_s: float = 30
    ) -> None:
        self.url = url
        self._client = jwt.PyJWKClient(
            url, lifespan=max_age_s, timeout=timeout_s, cooldown_duration=cooldown_s
        )

    def key(self, kid: str | None) -> jwt.PyJWK:
        try:
            if kid is None:
                keys = self._client.get_signing_keys()
                if len(keys) == 1:
                    return keys[0]
                raise GrantRefused("unknown_key", "the grant names no key (kid) and the JWKS has several")
            return self._client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise GrantRefused("keys_unavailable", f"cannot fetch {self.url}: {exc}") from None
        except jwt.PyJWKClientError as exc:
            raise GrantRefused("unknown_key", str(exc)) from None


def jwks_from(source: str | Path | Mapping[str, Any]) -> KeySource:
    """A key source from a JWKS document, an ``http(s)://`` URL or a file path."""
    if isinstance(source, Mapping):
        return StaticJwks(source)
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        return RemoteJwks(source)
    return StaticJwks.from_file(source)


def _int(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise GrantRefused("invalid_claims", f"{name} must be an integer")
    return value


def _str(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise GrantRefused("invalid_claims", f"{name} must be a non-empty string")
    return value


class GrantVerifier:
    """Verifies grants of one service (``issuer``) meant for ``audience``.

    ``keys``: a :class:`KeySource`, or what :func:`jwks_from` takes. ``leeway_s``: clock skew
    allowed on ``exp`` and ``nbf`` (a grant "issued in the future" by a clock ahead of this one is
    not refused for it: grants carry no ``nbf``, and the signer is trusted). ``fence``: the
    per-user epoch memory (None: no fencing; share one fence between verifiers of the same
    users). ``accept_degraded``: honour grants issued while the service's store was down
    (``deg: true``; they carry no epoch and are not fenced). ``clock``: seconds since the epoch
    (tests pass a fake one).
    """

    def __init__(
        self,
        keys: KeySource | str | Path | Mapping[str, Any],
        issuer: str,
        audience: str,
        *,
        leeway_s: float = 10,
        fence: EpochFence | None = None,
        accept_degraded: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = jwks_from(keys) if isinstance(keys, str | Path | Mapping) else keys
        self.issuer, self.audience, self.leeway_s = issuer, audience, leeway_s
        self.fence = fence
        self.accept_degraded = accept_degraded
        self._clock = clock

    def verify(self, token: str) -> Grant:
        """The grant's claims, checked; ``GrantRefused`` (with a ``reason``) otherwise. A valid
        grant that is not degraded is remembered by the fence (before it is judged)."""
        claims, kid = self._signed_claims(token)
        now = self._clock()
        exp, iat = _int(claims, "exp"), _int(claims, "iat")
        if now - self.leeway_s >= exp:
            raise GrantRefused("expired", f"expired {now - exp:.0f} s ago")
        nbf = _int(claims, "nbf") if "nbf" in claims else None
        if nbf is not None and nbf > now + self.leeway_s:
            raise GrantRefused("not_yet_valid", f"valid only in {nbf - now:.0f} s (clocks differ?)")
        user, stream, jti, lim = (
            _str(claims, "sub"),
            _str(claims, "sid"),
            _str(claims, "jti"),
            _int(claims, "lim"),
        )
        if lim < 1:
            raise GrantRefused("invalid_claims", "lim must be at least 1")
        degraded = claims.get("deg") is True
        epoch: int | None = None
        if degraded:
            if not self.accept_degraded:
                raise GrantRefused("degraded", "issued while the service's store was down")
        elif claims.get("epoch") is not None:  # null: a lease admitted before leases had epochs
            epoch = _int(claims, "epoch")
            if self.fence is not None and not self.fence.admit(user, epoch, lim, iat):
                raise GrantRefused(
                    "fenced",
                    f"stream {stream!r} of user {user!r} was replaced by a newer one (epoch {epoch})",
                )
        return Grant(user, stream, epoch, lim, iat, exp, jti, degraded, kid, claims)

    def _signed_claims(self, token: str) -> tuple[dict[str, Any], str | None]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise GrantRefused("malformed", f"not a JWS: {exc}") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise GrantRefused("malformed", f"alg must be one of {', '.join(ALGORITHMS)}, not {alg!r}")
        if kid is not None and not isinstance(kid, str):
            raise GrantRefused("malformed", "kid must be a string")
        key = self.keys.key(kid)
        if key.algorithm_name != alg:
            raise GrantRefused("bad_signature", f"key {kid!r} is an {key.algorithm_name} key, not {alg}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                issuer=self.issuer,
                audience=self.audience,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require": REQUIRED},
            )
        except jwt.InvalidSignatureError:
            raise GrantRefused("bad_signature", "the signature does not verify") from None
        except jwt.InvalidIssuerError:
            raise GrantRefused("wrong_issuer", f"not issued by {self.issuer!r}") from None
        except jwt.InvalidAudienceError:
            raise GrantRefused("wrong_audience", f"not meant for {self.audience!r}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise GrantRefused("invalid_claims", str(exc)) from None
        except jwt.PyJWTError as exc:
            raise GrantRefused("malformed", f"{type(exc).__name__}: {exc}") from None
        return claims, kid
