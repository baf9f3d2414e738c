"""What only a real server shows: leases written by the previous version are still read and
renewed after an upgrade, and the tombstone hash keeps only the tombstones of one lease TTL."""

from __future__ import annotations

import asyncio
import time

from redis import Redis

from streamlimit.models import Actor, Limits, Start, StartStatus
from streamlimit.store.keys import user_keys
from streamlimit.store.pipelined import PipelinedClient
from streamlimit.store.redis import RedisStore
from tests.servers import RedisServer

LIMITS = Limits(2)


def test_leases_written_before_per_lease_epochs_are_read_renewed_and_evicted(redis_url: str) -> None:
    raw = Redis.from_url(redis_url, decode_responses=True)
    leases, info = user_keys("old")[:2]
    now = int(time.time() * 1000)
    # the previous layout: "<started_ms>" or "<started_ms>|<device>", and the user's '#epoch'
    raw.zadd(leases, {"tv": now + 60_000, "phone": now + 60_000})
    raw.hset(info, mapping={"tv": f"{now - 2}|living room|tv", "phone": f"{now - 1}", "#epoch": now * 1000})

    async def main() -> None:
        store = RedisStore(PipelinedClient.from_url(redis_url, 2.0))
        try:
            listed = await store.list("old", LIMITS)
            assert [(s.stream_id, s.device, s.epoch) for s in listed.streams] == [
                ("tv", "living room|tv", None),
                ("phone", None, None),
            ]
            beat = await store.heartbeat("old", "tv", 90_000, LIMITS)
            assert beat.stream is not None
            assert beat.stream.device == "living room|tv"
            new = await store.start("old", "new", None, 90_000, LIMITS, Start(evict_oldest=True))
            assert new.status is StartStatus.ADMITTED
            assert [s.stream_id for s in new.evicted] == ["tv"]  # the oldest, by its start
            assert new.epoch is not None
            assert new.epoch > now * 1000
        finally:
            await store.close()
            raw.close()

    asyncio.run(main())


def test_the_tombstone_hash_keeps_only_live_tombstones(redis_server: RedisServer) -> None:
    """Every stop leaves a tombstone for one lease TTL; each burial drops the ones that ended,
    so a user who starts and stops all day holds one TTL's worth, not a day's."""
    redis_server.command("FLUSHALL")
    raw = Redis(port=redis_server.port)
    ended = user_keys("churn")[3]

    async def main() -> None:
        store = RedisStore(PipelinedClient.from_url(redis_server.url, 2.0))
        try:
            for i in range(60):
                if i and i % 10 == 0:
                    await asyncio.sleep(0.04)  # past the tombstones' 30 ms
                await store.start("churn", f"s{i}", None, 30, LIMITS, Start())
                await store.stop("churn", f"s{i}", 30, Actor("me"))
            assert raw.hlen(ended) <= 11
            assert 0 < raw.pttl(ended) <= 30
        finally:
            await store.close()
            raw.close()

    asyncio.run(main())
