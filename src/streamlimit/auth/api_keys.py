"""auth=api_key: ``X-API-Key`` for trusted backends, checked against SHA-256 hashes.

The keys file (``STREAMLIMIT_API_KEYS_FILE``) has one key per line, ``NAME ROLE SHA256_HEX``,
``#`` comments allowed; ROLE is ``admin`` (any user, limits too) or ``service`` (any user's
streams). ``streamlimit api-key new NAME [--admin]`` makes a key and its line. Keys are random
256-bit values, so a plain SHA-256 (not a slow password hash) is the right digest; every line
is compared, in constant time, so the timing tells nothing about which key came close.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streamlimit.auth.principal import Principal, credential
from streamlimit.errors import ConfigurationError, Unauthenticated

ROLES = ("admin", "service")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "slk_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class _Entry:
    name: str
    admin: bool
    sha256: bytes


class ApiKeyAuthenticator:
    scheme = 'ApiKey realm="streamlimit", header="X-API-Key"'

    def __init__(self, entries: list[_Entry]) -> None:
        if not entries:
            raise ConfigurationError("the API keys file holds no key")
        self._entries = entries

    @classmethod
    def from_file(cls, path: Path) -> ApiKeyAuthenticator:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read STREAMLIMIT_API_KEYS_FILE {path}: {exc.strerror}"
            ) from None
        entries = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 3 or parts[1] not in ROLES or len(parts[2]) != 64:
                raise ConfigurationError(f"{path}:{n}: expected 'NAME admin|service SHA256_HEX'")
            try:
                sha = bytes.fromhex(parts[2])
            except ValueError:
                raise ConfigurationError(f"{path}:{n}: the hash is not hexadecimal") from None
            entries.append(_Entry(parts[0], parts[1] == "admin", sha))
        return cls(entries)

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        presented = hashlib.sha256(credential(headers, "x-api-key").encode()).digest()
        found = None
        for entry in self._entries:  # all of them, whatever matched
            if hmac.compare_digest(presented, entry.sha256):
                found = entry
        if found is None:
            raise Unauthenticated("unknown API key")
        return Principal(found.name, None, admin=found.admin, any_user=True, credential=found.name)
