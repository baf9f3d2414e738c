"""Signatures as the Standard Webhooks specification says: headers ``webhook-id``,
``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` (``v1,`` and the base64 of
HMAC-SHA256 over ``{id}.{timestamp}.{body}``), made by the ``standardwebhooks`` package of the
specification's authors, which receivers can use to verify them.

The secret: ``whsec_`` and the base64 of the key (the specification's convention, what its
libraries take), or any other text, whose UTF-8 bytes are the key. Either way at least 24
bytes (192 bits, the specification's minimum).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from standardwebhooks import Webhook

PREFIX = "whsec_"
MIN_KEY_BYTES = 24


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret; a ``ValueError`` that never shows the secret otherwise."""
    if secret.startswith(PREFIX):
        try:
            encoded = secret.removeprefix(PREFIX)
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)  # padding optional
        except (binascii.Error, ValueError):
            raise ValueError(f"a secret starting {PREFIX} must go on with base64") from None
    else:
        key = secret.encode()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the webhook secret must be at least {MIN_KEY_BYTES} bytes (got {len(key)})")
    return key


class Signer:
    """The three headers of one attempt."""

    def __init__(self, secret: str) -> None:
        self._hook = Webhook(secret_key(secret))

    def headers(self, event_id: str, body: bytes, now_s: float) -> dict[str, str]:
        at = datetime.fromtimestamp(int(now_s), UTC)
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(int(now_s)),
            "webhook-signature": self._hook.sign(event_id, at, body),
        }
