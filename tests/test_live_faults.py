"""Live channels through faults, with real processes: the store down (degraded events, per the
outage policy) and restarted empty (the lease found gone and nobody ended it: admitted again, as
a heartbeat would; with no slot free, lost), the pub/sub connection cut (kicks
come again once resubscribed), a kick never published (the next renewal finds the tombstone),
SIGTERM (players told to reconnect elsewhere, the lease kept) and a killed service (the lease
ends within a TTL unless the player reconnects elsewhere, which resumes it)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

import httpx

from streamlimit.models import Limits, Start
from streamlimit.settings import Settings
from streamlimit.store.connect import store_client
from streamlimit.store.keys import user_keys
from streamlimit.store.redis import RedisStore
from tests.servers import RedisServer, Service
from tests.sse import Channel, Frame, open_channel

FAST = {"lease_ttl_s": 1.5, "heartbeat_interval_s": 0.2, "live_keepalive_s": 0.5, "start_rate_per_min": 0}


def until(ch: Channel, *events: str) -> Frame:
    """The next event among ``events`` (renewals and degraded events skipped unless asked)."""
    while True:
        f = ch.event()
        if f.event in events:
            return f


def started(c: httpx.Client, user: str, stream: str, **params: str) -> None:
    r = c.post(f"/v1/users/{user}/streams", json={"stream_id": stream}, params=params)
    assert r.status_code in (200, 201), r.text


def test_store_down_then_back_empty(
    private_store: RedisServer, service_factory: Callable[..., Service]
) -> None:
    svc = service_factory(private_store.url, store_timeout_ms=200, **FAST)
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        started(c, "alice", "tv")
        with open_channel(c, "alice", "tv") as ch:
            epoch = ch.event().data["epoch"]
            private_store.kill()
            degraded = until(ch, "degraded")
            assert (degraded.data["degraded"], degraded.data["on_store_error"]) == (True, "allow")
            assert "expires_at" in degraded.data
            private_store.start()  # empty: the lease is gone with the data, and nobody ended it
            back = until(ch, "renewed", "lost", "evicted", "stopped")
            assert (back.event, back.data["readmitted"]) == ("renewed", True)  # as a heartbeat would
            assert back.data["epoch"] != epoch
        # gone, and no slot to admit it again: lost
        c.put("/v1/users/alice/limit", json={"limit": 1})
        with open_channel(c, "alice", "tv") as ch:
            assert ch.event().event == "renewed"
            private_store.command("DEL", *user_keys("alice")[:2])  # the leases, as a store losing them
            started(c, "alice", "phone")  # takes the only slot
            lost = until(ch, "lost", "evicted", "stopped", "renewed")
            assert (lost.event, lost.data["status"], lost.data["code"]) == ("lost", 404, "stream_not_active")
            assert ch.closed()


def test_a_cut_subscription_comes_back_and_a_kick_never_sent_is_found_by_a_renewal(
    private_store: RedisServer, service_factory: Callable[..., Service]
) -> None:
    holding = service_factory(private_store.url, **FAST)
    with httpx.Client(base_url=holding.url, timeout=5) as c:
        started(c, "bob", "tv")
        with open_channel(c, "bob", "tv") as ch:
            assert ch.event().event == "renewed"
            private_store.command("CLIENT", "KILL", "TYPE", "pubsub")
            time.sleep(0.3)  # the subscriber reconnects (its first pause is 50 ms)
            sent = time.monotonic()
            started(c, "bob", "phone", replace="tv")
            f = until(ch, "evicted")
            assert f.data["replaced_by"] == "phone"
            assert f.at - sent < 0.15, "a kick, not the renewal 0.2 s later"
        started(c, "bob", "tv2")
        with open_channel(c, "bob", "tv2") as ch:
            assert ch.event().event == "renewed"
            quiet = _store_without_kicks(private_store.url)
            sent = time.monotonic()
            _evict(quiet, "bob", "tv2")
            f = until(ch, "evicted", "stopped", "lost")
            assert (f.event, f.data["code"], f.data["replaced_by"]) == ("evicted", "stream_evicted", "tv3")
            assert f.at - sent < 0.2 + 0.3, "found by the next renewal"


def _store_without_kicks(url: str) -> RedisStore:
    return RedisStore(store_client(url, Settings(store_url=url)), kicks=False)


def _evict(store: RedisStore, user: str, stream: str) -> None:
    async def go() -> None:
        try:
            how = Start(replace=stream)
            r = await store.start(user, "tv3", None, 90_000, Limits(3), how)
            assert [s.stream_id for s in r.evicted] == [stream]
        finally:
            await store.close()

    asyncio.run(go())


def test_sigterm_tells_players_to_reconnect_and_keeps_the_lease(
    redis_url: str, service_factory: Callable[..., Service]
) -> None:
    leaving = service_factory(redis_url, **FAST)
    staying = service_factory(redis_url, **FAST)
    with (
        httpx.Client(base_url=leaving.url, timeout=5) as a,
        httpx.Client(base_url=staying.url, timeout=5) as b,
    ):
        started(a, "carol", "tv")
        with open_channel(a, "carol", "tv") as ch:
            epoch = ch.event().data["epoch"]
            assert leaving.proc is not None
            os.killpg(leaving.proc.pid, signal.SIGTERM)
            told = until(ch, "reconnect")
            assert 0 <= told.data["retry_ms"] <= 1000
            assert ch.closed()
        assert leaving.proc.wait(10) == 0
        with open_channel(b, "carol", "tv") as ch:  # the player's EventSource, reconnecting elsewhere
            resumed = ch.event()
            assert (resumed.event, resumed.data["epoch"], resumed.data["readmitted"]) == (
                "renewed",
                epoch,
                False,
            )


def test_a_killed_service_stops_renewing_and_a_reconnection_elsewhere_resumes(
    redis_url: str, service_factory: Callable[..., Service]
) -> None:
    dying = service_factory(redis_url, **FAST)
    other = service_factory(redis_url, **FAST)
    with httpx.Client(base_url=dying.url, timeout=5) as a, httpx.Client(base_url=other.url, timeout=5) as b:
        for stream in ("tv", "radio"):
            started(a, "dave", stream)
        with open_channel(a, "dave", "tv") as tv, open_channel(a, "dave", "radio") as radio:
            epoch = tv.event().data["epoch"]
            assert radio.event().event == "renewed"
            assert dying.proc is not None
            os.killpg(dying.proc.pid, signal.SIGKILL)
            killed_at = time.monotonic()
        with open_channel(b, "dave", "tv") as tv:  # within the TTL: the same lease
            resumed = tv.event()
            assert (resumed.event, resumed.data["epoch"]) == ("renewed", epoch)
            while b.get("/v1/users/dave/streams/radio").status_code == 200:  # nobody renews it
                assert time.monotonic() < killed_at + 1.5 + 0.5
                time.sleep(0.05)
            assert b.get("/v1/users/dave/streams/tv").status_code == 200


def test_a_channel_opened_during_an_outage_is_admitted_once_the_store_is_back(
    private_store: RedisServer, service_factory: Callable[..., Service]
) -> None:
    svc = service_factory(private_store.url, store_timeout_ms=200, **FAST)
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        private_store.kill()
        with open_channel(c, "erin", "tv") as ch:  # ON_STORE_ERROR=allow: opened, degraded
            first = ch.event()
            assert (first.event, first.data["degraded"]) == ("degraded", True)
            private_store.start()
            back = until(ch, "renewed", "lost")
            assert (back.event, back.data["readmitted"], back.data["degraded"]) == ("renewed", True, False)
            assert back.data["epoch"] is not None
        assert c.get("/v1/users/erin/streams/tv").status_code == 200
