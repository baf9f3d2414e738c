"""Key layout. One hash tag per user keeps a user's keys in one Cluster slot."""

from __future__ import annotations

import re
from functools import cache

from redis.crc import key_slot

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
    "reached": "string",
}
KINDS = tuple(TYPES)
# any key of the layout; the user part still has to be checked as an id
PATTERN = re.compile(rf"{PREFIX}:\{{u:(?P<user>[^{{}}]*)\}}:(?P<kind>{'|'.join(KINDS)})")


def user_keys(user_id: str) -> tuple[str, ...]:
    """Every key of a user, in the scripts' KEYS order (see lua/_prelude.lua); ``user_id`` must
    already be a valid id (no braces)."""
    tag = f"{PREFIX}:{{u:{user_id}}}"
    return tuple(f"{tag}:{kind}" for kind in KINDS)


def live_channel(user_id: str) -> str:
    """The user's pub/sub shard channel, where the scripts publish kicks (lua/_prelude.lua's
    ``kick``): named with the user's hash tag, so it shares the slot of the user's keys (a
    script may SPUBLISH only there, on a Cluster). A channel, not a key: it holds nothing."""
    return f"{PREFIX}:{{u:{user_id}}}:live"


LIVE_PATTERN = re.compile(rf"{PREFIX}:\{{u:(?P<user>[^{{}}]*)\}}:live")


def renewal_keys(user_id: str) -> tuple[str, str, str]:
    """The keys lua/renew.lua needs of one lease's user: leases, info, ended."""
    keys = user_keys(user_id)
    return keys[0], keys[1], keys[3]


# The webhook queue (a Redis Stream, lua/_prelude.lua's ``notify``): one for the whole store, or on
# a Cluster one per slot, named so that it shares the slot of the users whose events it holds (a
# script may only touch keys of one slot).
HOOKS = f"{PREFIX}:hooks"
HOOKS_PATTERN = re.compile(rf"{PREFIX}:(?:hooks|\{{h:\d+\}}:hooks)")


def hooks_key(user_id: str, per_slot: bool, on: bool = True) -> str:
    """The queue holding ``user_id``'s webhook events. With webhooks off no script writes it, and
    the user's own ``reached`` key stands in, so that every call's keys stay in one slot (for a
    proxy that shards by slot, too)."""
    if not on:
        return user_keys(user_id)[7]
    if not per_slot:
        return HOOKS
    return slot_hooks_key(key_slot(user_keys(user_id)[0].encode()))


def slot_hooks_key(slot: int) -> str:
    """The Cluster queue of one slot: ``streamlimit:{h:N}:hooks``, N the smallest number whose
    tag hashes to ``slot``."""
    return f"{PREFIX}:{{h:{_slot_tags()[slot]}}}:hooks"


@cache
def _slot_tags() -> tuple[int, ...]:
    """For each of the 16384 slots, the smallest N with ``key_slot("h:N") == slot`` (about
    180,000 CRC16s, in C: about 150 ms, once per process, on a Cluster with webhooks on)."""
    tags: list[int | None] = [None] * 16384
    missing, n = 16384, 0
    while missing:
        slot = key_slot(f"h:{n}".encode())
        if tags[slot] is None:
            tags[slot] = n
            missing -= 1
        n += 1
    return tuple(t for t in tags if t is not None)


def script_keys(user_id: str, per_slot: bool = False, hooks_on: bool = False) -> tuple[str, ...]:
    """Every script's KEYS (lua/_prelude.lua): the user's keys, then the webhook queue (as
    ``hooks_key``, from the user's keys built once: this is on every call's path)."""
    keys = user_keys(user_id)
    if not hooks_on:
        return (*keys, keys[7])
    if not per_slot:
        return (*keys, HOOKS)
    return (*keys, slot_hooks_key(key_slot(keys[0].encode())))
