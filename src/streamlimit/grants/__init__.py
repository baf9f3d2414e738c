"""Playback grants: short-lived signed tokens bound to a lease, verified offline downstream.

The verifier side (this package's names) depends on PyJWT and cryptography only::

    from streamlimit.grants import EpochFence, GrantRefused, GrantVerifier

    verifier = GrantVerifier("https://streamlimit.example/.well-known/jwks.json",
                             issuer="streamlimit", audience="streamlimit-playback", fence=EpochFence())
    try:
        grant = verifier.verify(token)      # grant.user_id, grant.stream_id, grant.epoch, ...
    except GrantRefused as refused:         # refused.reason: expired, fenced, bad_signature, ...
        ...

The service's signing side is ``streamlimit.grants.issuer`` (not imported here).
"""

from streamlimit.grants.fence import EpochFence
from streamlimit.grants.verify import (
    Grant,
    GrantRefused,
    GrantVerifier,
    KeySource,
    RemoteJwks,
    StaticJwks,
    jwks_from,
)

__all__ = [
    "EpochFence",
    "Grant",
    "GrantRefused",
    "GrantVerifier",
    "KeySource",
    "RemoteJwks",
    "StaticJwks",
    "jwks_from",
]
