"""Shared helpers of the auth tests (test_auth_jwt.py, test_auth_other.py): tokens, keys, services."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from streamlimit.cli import main
from tests.servers import Service

# HS256 secrets of >= 32 bytes (shorter ones are refused, and PyJWT warns about them)
HS_SECRET = "hs256-test-secret-0123456789abcdef-0123456789"
OTHER_SECRET = "hs256-another-secret-fedcba9876543210-zyxwvu"
BEARER = 'Bearer realm="streamlimit"'
INVALID_BEARER = 'Bearer realm="streamlimit", error="invalid_token"'
API_KEY_CHALLENGE = 'ApiKey realm="streamlimit", header="X-API-Key"'
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
CSP = "default-src 'none'; frame-ancestors 'none'"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def uid() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The problem+json body of ``r``, asserting its status and code."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys(), body
    assert (body["status"], body["code"]) == (status, code)
    return body


def start(c: httpx.Client, user: str, headers: dict[str, str], stream: str = "s1") -> httpx.Response:
    """POST /v1/users/{user}/streams for ``stream``."""
    return c.post(f"/v1/users/{user}/streams", json={"stream_id": stream}, headers=headers)


# --- tokens -----------------------------------------------------------------------------------


def claims(user: str, scope: str | None = "streams", **changes: object) -> dict[str, Any]:
    """Valid claims for ``user`` (5 minutes); a change to None removes that claim."""
    now = int(time.time())
    out: dict[str, Any] = {"sub": user, "iat": now, "nbf": now, "exp": now + 300}
    if scope is not None:
        out["scope"] = scope
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def hs256(payload: dict[str, Any], secret: str = HS_SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def signed(payload: dict[str, Any], key: PrivateKey, kid: str | None = None) -> str:
    """RS256 with an RSA key, ES256 with an EC key; ``kid`` in the header when given."""
    alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    return jwt.encode(payload, key, algorithm=alg, headers=None if kid is None else {"kid": kid})


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def key(api_key: str) -> dict[str, str]:
    return {"x-api-key": api_key}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def unsigned(payload: dict[str, Any]) -> str:
    """An ``alg: none`` token: header and payload, and an empty signature."""
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(payload)}."


def hmac_signed(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """A token signed by hand with HMAC-SHA256 (whatever ``header`` claims), e.g. with a PEM as key."""
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def with_payload(token: str, **changes: object) -> str:
    """``token`` with claims changed in its payload and its header and signature kept."""
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{header}.{_segment(body | changes)}.{signature}"


# --- keys -------------------------------------------------------------------------------------


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def jwk(key: PrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        out = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        out = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**out, "kid": kid}


def new_api_key(name: str, admin: bool = False) -> tuple[str, str]:
    """``streamlimit api-key new NAME [--admin]`` -> (the key, its line for the keys file)."""
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["api-key", "new", name, *(["--admin"] if admin else [])]) == 0
    printed = dict(line.split(": ", 1) for line in out.getvalue().splitlines())
    key = printed["key (give it to the backend; it is not stored)"]
    line = printed["line for STREAMLIMIT_API_KEYS_FILE"]
    assert key.startswith("slk_")
    assert line.split()[:2] == [name, "admin" if admin else "service"]
    return key, line


# --- services and processes -------------------------------------------------------------------


@contextmanager
def running(store_url: str, log_path: Path, **settings: object) -> Iterator[tuple[Service, httpx.Client]]:
    """A service for the block, and a client bound to it."""
    svc = Service(store_url, log_path, **settings).start()
    try:
        with httpx.Client(base_url=svc.url, timeout=5) as c:
            yield svc, c
    finally:
        svc.stop()


def clean_env(**env: str) -> dict[str, str]:
    """This process's environment without any STREAMLIMIT_* variable, plus ``env``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIMIT_")} | env
