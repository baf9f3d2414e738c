"""``client.stream(..., live=True)``: the lease renewed by its live channel (no heartbeats), its
loss told within a second of an eviction made through another service process, a channel that
cannot be opened replaced by heartbeats, and the sync client's ``live``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from streamlimit.client import (
    AsyncStreamLimitClient,
    LeaseLost,
    StreamEvicted,
    StreamLimitClient,
    StreamLimitError,
    StreamStopped,
)
from tests.servers import Service


class Recording(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await super().handle_async_request(request)


def test_a_live_lease_needs_no_heartbeat_and_is_lost_within_a_second_of_an_eviction(
    redis_url: str, service_factory: Callable[..., Service]
) -> None:
    holding = service_factory(redis_url, lease_ttl_s=1.5, heartbeat_interval_s=0.3, start_rate_per_min=0)
    evicting = service_factory(redis_url, start_rate_per_min=0)
    seen: dict[str, float] = {}
    reasons: list[StreamLimitError] = []

    def on_lost(reason: StreamLimitError) -> None:
        seen["on_lost"] = time.monotonic()
        reasons.append(reason)

    async def scenario() -> None:
        wire = Recording()
        async with (
            AsyncStreamLimitClient(holding.url, transport=wire) as c,
            AsyncStreamLimitClient(evicting.url) as other,
        ):

            async def watch() -> None:
                async with c.stream("alice", "tv", on_lost=on_lost, live=True) as lease:
                    await asyncio.sleep(2.5)  # past the lease TTL (1.5 s): renewed by the channel
                    assert not lease.lost
                    first = lease.expires_at
                    await asyncio.sleep(0.4)
                    assert lease.expires_at > first  # renewals reach the lease's info
                    seen["evicted"] = time.monotonic()  # sent: the kick may come before its answer
                    r = await other.http.post(
                        "/v1/users/alice/streams", json={"stream_id": "phone"}, params={"replace": "tv"}
                    )
                    assert r.status_code == 201
                    await asyncio.sleep(10)

            with pytest.raises(LeaseLost):
                await watch()
            assert isinstance(reasons[0], StreamEvicted)
            assert reasons[0].replaced_by == "phone"
            assert seen["on_lost"] - seen["evicted"] < 1.0, seen
            assert not any(p.endswith("/heartbeat") for p in wire.paths), wire.paths
            assert any(p.endswith("/tv/live") for p in wire.paths)

    asyncio.run(scenario())


def test_a_channel_that_cannot_open_falls_back_to_heartbeats(service_factory: Callable[..., Service]) -> None:
    svc = service_factory("memory://", live_max_channels=0, lease_ttl_s=1.0, heartbeat_interval_s=0.2)
    lost: list[StreamLimitError] = []

    async def scenario() -> None:
        wire = Recording()
        async with AsyncStreamLimitClient(svc.url, transport=wire) as c:

            async def watch() -> None:
                async with c.stream("bob", "tv", on_lost=lost.append, live=True):
                    await asyncio.sleep(2.0)  # two lease TTLs: heartbeats kept it
                    assert [s.stream_id for s in (await c.list("bob")).streams] == ["tv"]
                    await c.stop_all("bob")
                    await asyncio.sleep(5)

            with pytest.raises(LeaseLost):
                await watch()
            assert isinstance(lost[0], StreamStopped)
            assert any(p.endswith("/heartbeat") for p in wire.paths)

    asyncio.run(scenario())


def test_the_sync_client_holds_a_live_lease(service_factory: Callable[..., Service]) -> None:
    svc = service_factory("memory://", lease_ttl_s=1.0, heartbeat_interval_s=0.2)
    gone = threading.Event()

    def watch(c: StreamLimitClient) -> None:
        with c.stream("carol", "tv", on_lost=lambda _: gone.set(), live=True) as lease:
            time.sleep(1.5)  # past the lease TTL
            assert not lease.lost
            c.stop("carol", "tv")
            assert gone.wait(1.0)
            assert lease.lost

    with StreamLimitClient(svc.url) as c, pytest.raises(LeaseLost):
        watch(c)
