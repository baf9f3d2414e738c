"""Grant keys made at test time (none is committed), and leases to sign grants for."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from streamlimit.models import Stream

ISSUER, AUDIENCE = "streamlimit", "streamlimit-playback"  # the settings' defaults


def private_key(kind: str = "ed25519") -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def pem(*keys: object, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM of each key, one after the other."""
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return b"".join(
        k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)  # type: ignore[attr-defined]
        for k in keys
    )


def write_key(path: Path, kind: str = "ed25519") -> Path:
    """A new private key (``ed25519``, ``es256``; ``rsa`` for refusals) in a PEM file."""
    key = rsa.generate_private_key(65537, 2048) if kind == "rsa" else private_key(kind)
    path.write_bytes(pem(key))
    return path


def lease(
    user: str = "alice", stream: str = "tv", epoch: int | None = 1_000, expires_ms: int = 1_800_000_090_000
) -> Stream:
    """A lease that started 90 s before ``expires_ms`` (the issuer's default lease TTL below)."""
    return Stream(user, stream, None, expires_ms - 90_000, expires_ms, epoch)
