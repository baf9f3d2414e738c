"""A store at maxmemory (noeviction) on a real server: leases are still renewed, so playing streams
survive a memory-full incident; new admissions are refused before anything is written."""

from __future__ import annotations

import asyncio

import pytest
from redis import Redis

from streamlimit.errors import StoreUnavailable
from streamlimit.models import Limits, Start, StartStatus
from streamlimit.store.keys import user_keys
from streamlimit.store.pipelined import PipelinedClient
from streamlimit.store.redis import RedisStore
from tests.servers import RedisServer

LIMITS = Limits(3)


def test_heartbeats_renew_and_starts_are_refused_cleanly_at_maxmemory(any_private_store: RedisServer) -> None:
    admin = Redis(port=any_private_store.port)

    async def main() -> None:
        store = RedisStore(PipelinedClient.from_url(any_private_store.url, 2.0))
        try:
            first = await store.start("u", "a", "tv", 1_000, LIMITS, Start())
            assert first.stream is not None
            assert admin.config_set("maxmemory-policy", "noeviction")
            assert admin.config_set("maxmemory", 1)  # everything is over the limit now
            keys = user_keys("u")
            before = [admin.dump(k) for k in keys]
            with pytest.raises(StoreUnavailable, match="OOM"):
                await store.start("u", "b", None, 1_000, LIMITS, Start())
            with pytest.raises(StoreUnavailable, match="OOM"):  # re-admission grows memory too
                await store.heartbeat("u", "gone", 1_000, LIMITS)
            assert [admin.dump(k) for k in keys] == before  # refused before any write
            beat = await store.heartbeat("u", "a", 60_000, LIMITS)
            assert beat.stream is not None
            assert beat.stream.expires_at_ms > first.stream.expires_at_ms + 50_000
            assert admin.pttl(keys[0]) > 50_000  # the keys live as long as the renewed lease
            assert admin.pttl(keys[1]) > 50_000
            renewed = await store.start("u", "a", None, 60_000, LIMITS, Start())  # a start's retry
            assert renewed.status is StartStatus.RENEWED
            assert (await store.stop("u", "a", 1_000)).removed is not None  # a stop frees memory
        finally:
            admin.config_set("maxmemory", 0)
            await store.close()

    asyncio.run(main())
