"""Key layout. One hash tag per user keeps a user's keys in one Cluster slot."""

from __future__ import annotations

import re

PREFIX = "streamlimit"
# each kind of key, and the Redis type it holds (see lua/_prelude.lua)
TYPES = {
    "leases": "zset",
    "info": "hash",
    "limit": "hash",
    "evicted": "hash",
    "events": "list",
    "rate": "string",
    "stops": "string",
}
KINDS = tuple(TYPES)
# any key of the layout; the user part still has to be checked as an id
PATTERN = re.compile(rf"{PREFIX}:\{{u:(?P<user>[^{{}}]*)\}}:(?P<kind>{'|'.join(KINDS)})")


def user_keys(user_id: str) -> tuple[str, ...]:
    """Every key of a user, in the scripts' KEYS order (see lua/_prelude.lua); ``user_id`` must
    already be a valid id (no braces)."""
    tag = f"{PREFIX}:{{u:{user_id}}}"
    return tuple(f"{tag}:{kind}" for kind in KINDS)
