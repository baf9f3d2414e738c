"""Store-side set-up through redis-py: script loading, seeding leases, memory per stream."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from streamlimit.models import Limits, Start
from streamlimit.store import argv, scripts
from streamlimit.store.keys import live_channel, script_keys, user_keys

DAY_MS = 86_400_000  # the longest lease the service accepts: nothing expires during the bench
BATCH = 5_000


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=60)


def call(sha: str, user: str, args: Sequence[str | int]) -> tuple[Any, ...]:
    """EVALSHA of a script for ``user`` as the service sends it (store/redis.py): the user's keys
    and the webhook queue, the script's ARGV and the common ones (webhooks off, kicks on)."""
    keys = script_keys(user)  # webhooks off: the user's own reached key stands in for the queue
    return ("EVALSHA", sha, len(keys), *keys, *args, *argv.common(user, 0, live_channel(user)))


def start_argv(stream_id: str, ttl_ms: int, limit: int) -> tuple[str | int, ...]:
    """The start script's ARGV (store/argv.py): no device, no plans, no eviction, no budget."""
    return argv.start(stream_id, None, ttl_ms, Limits(limit), Start())


def load_scripts(r: redis.Redis) -> dict[str, str]:
    """SCRIPT LOAD every script (prelude + op), as the service does; name -> sha."""
    return {name: str(r.script_load(scripts.source(name))) for name in scripts.NAMES}


def bench_user(i: int, prefix: str = "u") -> str:
    """The seeded users, named as redis-benchmark's ``__rand_int__`` expands (12 digits)."""
    return f"{prefix}{i:012d}"


def pipelined(r: redis.Redis, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Send ``commands`` as one packed batch on one redis-py connection, then read every reply."""
    conn = r.connection_pool.get_connection()
    try:
        packed = conn.pack_commands(commands)  # type: ignore[no-untyped-call]
        conn.send_packed_command(packed, check_health=False)  # type: ignore[no-untyped-call]
        return [conn.read_response() for _ in commands]
    finally:
        r.connection_pool.release(conn)


def flushall(r: redis.Redis) -> None:
    # not lazily: memory figures must start from empty
    r.execute_command("FLUSHALL", "SYNC")  # type: ignore[no-untyped-call]


def seed(
    r: redis.Redis,
    start_sha: str,
    users: Iterable[str],
    streams: Sequence[str] = ("s",),
    ttl_ms: int = DAY_MS,
    limit: int = 1000,
) -> int:
    """Admit ``streams`` for every user through EVALSHA of the start script, pipelined."""
    admitted = 0
    batch: list[tuple[Any, ...]] = []
    for user in users:
        batch += [call(start_sha, user, start_argv(sid, ttl_ms, limit)) for sid in streams]
        if len(batch) >= BATCH:
            admitted += sum(1 for reply in pipelined(r, batch) if reply[0] == 1)
            batch = []
    if batch:
        admitted += sum(1 for reply in pipelined(r, batch) if reply[0] == 1)
    return admitted


@dataclass(frozen=True)
class Memory:
    leases: int
    users: int
    streams_per_user: int
    stream_id: str
    used_before: int
    used_after: int
    load_s: float
    sample_user: str
    sample_leases_bytes: int
    sample_info_bytes: int

    @property
    def per_stream(self) -> float:
        return (self.used_after - self.used_before) / self.leases

    @property
    def sample_per_stream(self) -> float:
        return (self.sample_leases_bytes + self.sample_info_bytes) / self.streams_per_user

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "per_stream": self.per_stream, "sample_per_stream": self.sample_per_stream}


def memory_per_stream(r: redis.Redis, leases: int, streams_per_user: int, uuid_ids: bool) -> Memory:
    """Load ``leases`` active leases (users x streams), measure, then FLUSHALL."""
    flushall(r)
    shas = load_scripts(r)
    time.sleep(0.2)
    before = int(r.info("memory")["used_memory"])
    users = -(-leases // streams_per_user)

    def ids(u: int) -> list[str]:
        if uuid_ids:  # what a compat start generates, and what most players send
            return [
                str(uuid.UUID(int=(u * streams_per_user + k) * 7919 + 1)) for k in range(streams_per_user)
            ]
        return [f"s{k}" for k in range(streams_per_user)]

    started = time.monotonic()
    admitted = 0
    for lo in range(0, users, BATCH // streams_per_user):
        batch = [
            call(shas["start"], bench_user(u, "m"), start_argv(s, DAY_MS, 3))
            for u in range(lo, min(users, lo + BATCH // streams_per_user))
            for s in ids(u)
        ]
        admitted += sum(1 for reply in pipelined(r, batch) if reply[0] == 1)
    load_s = time.monotonic() - started
    after = int(r.info("memory")["used_memory"])
    sample = bench_user(users // 2, "m")
    leases_key, info_key = user_keys(sample)[:2]
    result = Memory(
        leases=admitted,
        users=users,
        streams_per_user=streams_per_user,
        stream_id=ids(0)[0],
        used_before=before,
        used_after=after,
        load_s=load_s,
        sample_user=sample,
        sample_leases_bytes=int(r.memory_usage(leases_key, samples=0) or 0),
        sample_info_bytes=int(r.memory_usage(info_key, samples=0) or 0),
    )
    flushall(r)
    return result
