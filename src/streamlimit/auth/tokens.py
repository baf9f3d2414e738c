"""auth=jwt: ``Authorization: Bearer <JWT>``, HS256 with a shared secret, or RS256/ES256 with a
PEM public key or a JWKS file (keys chosen by ``kid``, so two can be valid during a rotation)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from streamlimit.auth.principal import Principal, credential
from streamlimit.errors import ConfigurationError, Forbidden, Unauthenticated
from streamlimit.settings import Settings

ADMIN_SCOPE, USER_SCOPE = "streams:admin", "streams"


_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def _algorithms(key: Any) -> list[str]:
    """The one algorithm a key may verify: RS256 for RSA, ES256/384/512 by the EC curve."""
    if isinstance(key, rsa.RSAPublicKey):
        return ["RS256"]
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
        return [_EC_ALGORITHMS[key.curve.name]]
    raise ConfigurationError("a JWT verification key must be an RSA or an EC (P-256/384/521) public key")


class JwtAuthenticator:
    scheme = 'Bearer realm="streamlimit"'

    def __init__(self, settings: Settings) -> None:
        self._keys: dict[str | None, tuple[Any, list[str]]] = {}  # kid -> (key, algorithms)
        self._by_kid = False
        try:
            if settings.jwt_secret is not None:
                self._keys[None] = (settings.jwt_secret.get_secret_value(), ["HS256"])
            elif settings.jwt_public_key_file is not None:
                key = load_pem_public_key(settings.jwt_public_key_file.read_bytes())
                self._keys[None] = (key, _algorithms(key))
            elif settings.jwks_file is not None:
                self._by_kid = True  # a token names its key; one without kid gets the JWK without
                for jwk in json.loads(settings.jwks_file.read_text())["keys"]:
                    from_jwk: Any = (RSAAlgorithm if jwk.get("kty") == "RSA" else ECAlgorithm).from_jwk(jwk)
                    self._keys[jwk.get("kid")] = (from_jwk, _algorithms(from_jwk))
        except (OSError, ValueError, KeyError, TypeError, jwt.PyJWTError) as exc:
            raise ConfigurationError(f"cannot load the JWT verification key: {type(exc).__name__}") from None
        if not self._keys:
            raise ConfigurationError("no JWT verification key configured")
        self._issuer, self._audience = settings.jwt_issuer, settings.jwt_audience
        self._leeway = settings.jwt_leeway_s

    def _key_for(self, token: str) -> tuple[Any, list[str]]:
        if not self._by_kid:
            return self._keys[None]
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise Unauthenticated("malformed token") from None
        if kid not in self._keys:
            raise Unauthenticated("token signed with an unknown key (kid)")
        return self._keys[kid]

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        token = credential(headers, "authorization", "Bearer")
        key, algorithms = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token not valid yet (nbf)") from None
        except jwt.PyJWTError as exc:  # InvalidTokenError, and InvalidKeyError for a mismatched key
            raise Unauthenticated(f"invalid token: {type(exc).__name__}") from None
        subject, scope = claims["sub"], claims.get("scope", "")
        scopes = set(scope.split()) if isinstance(scope, str) else set()
        if not isinstance(subject, str):
            raise Unauthenticated("invalid token: sub must be a string")
        plan = claims.get("plan") if isinstance(claims.get("plan"), str) else None
        jti = claims.get("jti") if isinstance(claims.get("jti"), str) else None
        if ADMIN_SCOPE in scopes:
            return Principal(subject, None, admin=True, any_user=True, plan=plan, credential=jti)
        if USER_SCOPE in scopes:
            return Principal(subject, subject, admin=False, any_user=False, plan=plan, credential=jti)
        raise Forbidden(f"the token's scope has neither {USER_SCOPE} nor {ADMIN_SCOPE}")
