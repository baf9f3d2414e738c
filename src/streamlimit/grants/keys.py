"""The service's grant signing keys: PEM private keys (Ed25519, or ES256 on P-256), each named by
its RFC 7638 JWK thumbprint (``kid``), and the public JWKS document that verifiers fetch."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from streamlimit.errors import ConfigurationError

_PEM_BLOCK = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL)
# RFC 7638 3.2: the required members of each key type, in lexicographic order
_THUMBPRINT_MEMBERS = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y")}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(jwk: dict[str, str]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK: a ``kid`` that only its key can have."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


@dataclass(frozen=True)
class SigningKey:
    """One private key, its JWS algorithm (``EdDSA`` or ``ES256``) and public JWK (with ``kid``)."""

    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    alg: str
    public_jwk: dict[str, str]

    @property
    def kid(self) -> str:
        return self.public_jwk["kid"]

    def sign(self, data: bytes) -> bytes:
        """The JWS signature of ``data``: Ed25519's 64 bytes, or ES256's R || S (RFC 7518 3.4)."""
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            return self.private.sign(data)
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    @classmethod
    def of(cls, private: Any) -> SigningKey:
        """A signing key of a loaded private key; ``ConfigurationError`` for another kind."""
        if isinstance(private, ed25519.Ed25519PrivateKey):
            raw = private.public_key().public_bytes_raw()
            jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
            alg = "EdDSA"
        elif isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1":
            numbers = private.public_key().public_numbers()
            jwk = {"kty": "EC", "crv": "P-256", "x": b64url(numbers.x.to_bytes(32, "big"))}
            jwk["y"] = b64url(numbers.y.to_bytes(32, "big"))
            alg = "ES256"
        else:
            raise ConfigurationError(
                f"a grant key must be an Ed25519 or a P-256 (ES256) private key, not {type(private).__name__}"
            )
        return cls(private, alg, {**jwk, "kid": thumbprint(jwk), "alg": alg, "use": "sig"})


def load_keys(paths: str) -> tuple[SigningKey, ...]:
    """The keys of ``STREAMLIMIT_GRANT_KEY_FILE``: comma-separated PEM files, each with one or more
    unencrypted private keys, in order (the first signs). A file that cannot be read, holds no
    key, or holds a key of another kind is a ``ConfigurationError`` naming it."""
    keys: list[SigningKey] = []
    for name in (p.strip() for p in paths.split(",")):
        if not name:
            continue
        path = Path(name)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read grant key file {name}: {exc.strerror or type(exc).__name__}"
            ) from None
        blocks = _PEM_BLOCK.findall(text)
        if not blocks:
            raise ConfigurationError(f"grant key file {name} holds no PEM private key")
        for n, block in enumerate(blocks, 1):
            try:
                private = load_pem_private_key(block, password=None)
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(
                    f"grant key file {name}: key {n} cannot be loaded ({type(exc).__name__}: an "
                    "unencrypted PKCS#8 or SEC1 PEM private key is expected)"
                ) from None
            try:
                keys.append(SigningKey.of(private))
            except ConfigurationError as exc:
                raise ConfigurationError(f"grant key file {name}: key {n}: {exc}") from None
    if not keys:
        raise ConfigurationError("STREAMLIMIT_GRANT_KEY_FILE names no file")
    kids = [k.kid for k in keys]
    if len(set(kids)) != len(kids):
        raise ConfigurationError("STREAMLIMIT_GRANT_KEY_FILE names the same key twice")
    return tuple(keys)


def jwks(keys: Sequence[SigningKey]) -> dict[str, Any]:
    """The public JWKS document of ``keys`` (RFC 7517 5): what ``/.well-known/jwks.json`` serves."""
    return {"keys": [dict(k.public_jwk) for k in keys]}
