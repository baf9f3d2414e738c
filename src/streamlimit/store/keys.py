"""Key layout. One hash tag per user keeps a user's keys in one Cluster slot."""

from __future__ import annotations

PREFIX = "streamlimit"


def user_keys(user_id: str) -> tuple[str, str, str]:
    """(leases, info, limit) keys; ``user_id`` must already be a valid id (no braces)."""
    tag = f"{PREFIX}:{{u:{user_id}}}"
    return f"{tag}:leases", f"{tag}:info", f"{tag}:limit"
