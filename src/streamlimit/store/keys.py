"""Key layout. One hash tag per user keeps a user's keys in one Cluster slot."""

from __future__ import annotations

PREFIX = "streamlimit"
KINDS = ("leases", "info", "limit", "evicted", "events", "rate")


def user_keys(user_id: str) -> tuple[str, ...]:
    """Every key of a user, in the scripts' KEYS order (see lua/_prelude.lua); ``user_id`` must
    already be a valid id (no braces)."""
    tag = f"{PREFIX}:{{u:{user_id}}}"
    return tuple(f"{tag}:{kind}" for kind in KINDS)
