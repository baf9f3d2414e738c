"""Black-box tests of "watch here instead" (on_limit=evict_oldest), its race across two processes,
and the per-minute start budget, on real `streamlimit serve` processes (auth=none)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.auth_helpers import problem, running, uid
from tests.servers import RedisServer, Service
from tests.test_accounts_api import events, ms, ok, start, started

LEASE_FIELDS = ("user_id", "stream_id", "device", "started_at", "expires_at")


def heartbeat(c: httpx.Client, user: str, stream: str) -> httpx.Response:
    return c.post(f"/v1/users/{user}/streams/{stream}/heartbeat")


def active_ids(c: httpx.Client, user: str) -> list[str]:
    return [s["stream_id"] for s in ok(c.get(f"/v1/users/{user}/streams"))["streams"]]


def set_limit(c: httpx.Client, user: str, limit: int) -> None:
    assert ok(c.put(f"/v1/users/{user}/limit", json={"limit": limit}))["limit"] == limit


@pytest.fixture(scope="module")
def service(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """Default limit 2, clients may evict, no start budget."""
    log = tmp_path_factory.mktemp("evict") / "svc.log"
    with running(redis_server.url, log, default_limit=2, start_rate_per_min=0) as (_, c):
        yield c


def new_client(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory, **settings: object
) -> Iterator[httpx.Client]:
    log = tmp_path_factory.mktemp("evict-settings") / "svc.log"
    with running(redis_server.url, log, **settings) as (_, c):
        yield c


@pytest.fixture(scope="module")
def fast(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """Leases of 1 s, so an eviction's tombstone (kept one lease) can be seen to go."""
    yield from new_client(
        redis_server, tmp_path_factory, default_limit=1, lease_ttl_s=1.0, heartbeat_interval_s=0.1
    )


@pytest.fixture(scope="module")
def budget(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """Three admissions a minute per user, and room for more streams than that."""
    yield from new_client(redis_server, tmp_path_factory, default_limit=10, start_rate_per_min=3)


# --- watch here instead -------------------------------------------------------------------------


def test_evict_oldest_replaces_the_oldest_stream_and_tells_it_so(service: httpx.Client) -> None:
    c, user = service, uid()
    a = started(c, user, "a")
    time.sleep(0.005)
    started(c, user, "b")
    problem(start(c, user, "c"), 409, "stream_limit_reached")
    problem(start(c, user, "c", on_limit="reject"), 409, "stream_limit_reached")
    bogus = problem(start(c, user, "c", on_limit="bogus"), 422, "invalid_query")
    assert bogus["field"] == "on_limit"
    problem(c.post(f"/v1/users/{user}/streams?on_limit=reject&on_limit=evict_oldest"), 422, "invalid_query")
    assert active_ids(c, user) == ["a", "b"]

    r = start(c, user, "c", on_limit="evict_oldest")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["stream_id"], body["active"], body["limit"], body["limit_source"]) == ("c", 2, 2, "default")
    assert body["evicted"] == {
        k: a[k]
        for k in (
            "user_id",
            "stream_id",
            "device",
            "device_id",
            "started_at",
            "expires_at",
            "epoch",
            "legacy",
        )
    }
    assert body["evicted_streams"] == [body["evicted"]]
    assert active_ids(c, user) == ["b", "c"]

    gone = problem(heartbeat(c, user, "a"), 410, "stream_evicted")
    assert (gone["user_id"], gone["stream_id"], gone["replaced_by"]) == (user, "a", "c")
    assert ms(gone["evicted_at"]) == ms(body["started_at"])  # in the same atomic step
    assert ok(heartbeat(c, user, "b"))["stream_id"] == "b"
    assert ok(heartbeat(c, user, "c"))["stream_id"] == "c"

    again = start(c, user, "c", on_limit="evict_oldest")  # a renewal evicts nothing
    assert again.status_code == 200, again.text
    assert (again.json()["evicted"], again.json()["active"]) == (None, 2)
    assert active_ids(c, user) == ["b", "c"]
    assert [(e["action"], e["streams"]) for e in events(c, user)] == [("evicted", ["a"])]

    set_limit(c, user, 0)  # nothing to make room in
    problem(start(c, user, "d", on_limit="evict_oldest"), 409, "stream_limit_reached")


def test_an_evicted_stream_is_told_so_for_one_lease_then_is_not_active(fast: httpx.Client) -> None:
    c, user = fast, uid()
    started(c, user, "old")
    r = start(c, user, "new", on_limit="evict_oldest")
    t0 = time.monotonic()
    assert r.status_code == 201, r.text
    assert r.json()["evicted"]["stream_id"] == "old"
    assert problem(heartbeat(c, user, "old"), 410, "stream_evicted")["replaced_by"] == "new"
    assert ok(heartbeat(c, user, "new"))["stream_id"] == "new"
    assert time.monotonic() - t0 < 0.8, "too slow to see the tombstone within the lease"
    time.sleep(max(0.0, 1.1 - (time.monotonic() - t0)))
    # the tombstone is gone: "old" is now a stream like any other the store does not hold, and
    # the slot is "new"'s (renewed, or admitted again if it expired meanwhile)
    assert ok(heartbeat(c, user, "new"))["stream_id"] == "new"
    body = problem(heartbeat(c, user, "old"), 404, "stream_not_active")
    assert (body["user_id"], body["stream_id"]) == (user, "old")


def test_evict_oldest_as_the_global_policy(redis_url: str, service_factory: Callable[..., Service]) -> None:
    svc = service_factory(redis_url, default_limit=1, on_limit="evict_oldest")
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        user = uid()
        started(c, user, "a")
        r = start(c, user, "b")
        assert r.status_code == 201, r.text
        assert (r.json()["evicted"]["stream_id"], r.json()["active"]) == ("a", 1)
        problem(start(c, user, "c", on_limit="reject"), 409, "stream_limit_reached")
        assert problem(heartbeat(c, user, "a"), 410, "stream_evicted")["replaced_by"] == "b"
        assert active_ids(c, user) == ["b"]


def test_clients_may_not_choose_eviction_when_disallowed(
    redis_url: str, service_factory: Callable[..., Service]
) -> None:
    svc = service_factory(redis_url, default_limit=1, allow_client_evict="false")
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        user = uid()
        problem(start(c, user, "a", on_limit="evict_oldest"), 403, "forbidden")  # even with room
        assert active_ids(c, user) == []
        started(c, user, "a", on_limit="reject")
        problem(start(c, user, "b", on_limit="evict_oldest"), 403, "forbidden")
        problem(start(c, user, "b", on_limit="reject"), 409, "stream_limit_reached")
        problem(start(c, user, "b"), 409, "stream_limit_reached")
        problem(start(c, user, "b", on_limit="bogus"), 422, "invalid_query")
        assert active_ids(c, user) == ["a"]
        assert ok(heartbeat(c, user, "a"))["stream_id"] == "a"


# --- the race -----------------------------------------------------------------------------------


async def _starts(urls: list[str], user: str, ids: list[str]) -> list[httpx.Response]:
    clients = [httpx.AsyncClient(base_url=u, timeout=10) for u in urls]
    try:
        return await asyncio.gather(
            *(
                clients[n % len(clients)].post(
                    f"/v1/users/{user}/streams", json={"stream_id": sid}, params={"on_limit": "evict_oldest"}
                )
                for n, sid in enumerate(ids)
            )
        )
    finally:
        for client in clients:
            await client.aclose()


@pytest.mark.slow  # several processes
def test_simultaneous_evictions_in_two_processes_leave_one_stream(
    redis_url: str, service_factory: Callable[..., Service]
) -> None:
    urls = [service_factory(redis_url, start_rate_per_min=0).url for _ in range(2)]
    user, ids = uid(), [f"r{n:02d}" for n in range(20)]
    with httpx.Client(base_url=urls[0], timeout=10) as c, httpx.Client(base_url=urls[1], timeout=10) as c2:
        set_limit(c, user, 1)
        started(c, user, "orig")

        answers = asyncio.run(_starts(urls, user, ids))
        bodies: list[dict[str, Any]] = []
        for r in answers:
            assert r.status_code == 201, r.text
            bodies.append(r.json())
        assert [b["stream_id"] for b in bodies] == ids
        assert all((b["active"], b["limit"]) == (1, 1) for b in bodies)
        evicted_by = {b["evicted"]["stream_id"]: b["stream_id"] for b in bodies}
        assert len(evicted_by) == 20  # every admission evicted a different stream

        (winner,) = active_ids(c2, user)
        assert winner in ids
        assert set(evicted_by) == {"orig", *ids} - {winner}
        for n, sid in enumerate(["orig", *ids]):
            if sid != winner:
                gone = problem(heartbeat((c, c2)[n % 2], user, sid), 410, "stream_evicted")
                assert gone["replaced_by"] == evicted_by[sid]
        assert ok(heartbeat(c, user, winner))["stream_id"] == winner
        trail = [e for e in events(c, user) if e["action"] == "evicted"]
        assert len(trail) == 20
        assert sorted(e["streams"][0] for e in trail) == sorted(evicted_by)
        assert {e["actor"] for e in trail} == {"anonymous"}


# --- the start budget ---------------------------------------------------------------------------


async def _heartbeats(url: str, user: str, stream: str, n: int) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        answers = await asyncio.gather(
            *(c.post(f"/v1/users/{user}/streams/{stream}/heartbeat") for _ in range(n))
        )
    return [r.status_code for r in answers]


def test_the_fourth_admission_in_a_minute_is_429_but_renewals_and_heartbeats_go_on(
    budget: httpx.Client,
) -> None:
    c, user = budget, uid()
    for sid in ("a", "b", "c"):
        started(c, user, sid)
    r = start(c, user, "d")
    body = problem(r, 429, "too_many_starts")
    retry = r.headers["retry-after"]
    assert retry.isdigit(), retry
    assert 1 <= int(retry) <= 20
    assert body["retry_after_s"] == int(retry)
    assert active_ids(c, user) == ["a", "b", "c"]

    renewed = start(c, user, "a")
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["active"] == 3
    assert asyncio.run(_heartbeats(str(c.base_url), user, "b", 50)) == [200] * 50

    set_limit(c, user, 3)  # at the limit: a refusal is answered before the budget is looked at
    problem(start(c, user, "d"), 409, "stream_limit_reached")
    problem(start(c, user, "d", on_limit="evict_oldest"), 429, "too_many_starts")
    assert active_ids(c, user) == ["a", "b", "c"]  # nothing was evicted for the refused start
    assert ok(heartbeat(c, user, "a"))["stream_id"] == "a"
    problem(start(c, uid(), "x", on_limit="bogus"), 422, "invalid_query")
    started(c, uid(), "x")  # another user's budget is their own


def test_refusals_do_not_spend_the_budget(budget: httpx.Client) -> None:
    c, user = budget, uid()
    set_limit(c, user, 1)
    started(c, user, "a")  # 1 of 3
    for _ in range(5):
        problem(start(c, user, "b"), 409, "stream_limit_reached")
    assert c.delete(f"/v1/users/{user}/streams/a").status_code == 204
    started(c, user, "b")  # 2 of 3
    assert c.delete(f"/v1/users/{user}/streams/b").status_code == 204
    started(c, user, "c")  # 3 of 3
    assert c.delete(f"/v1/users/{user}/streams/c").status_code == 204
    problem(start(c, user, "d"), 429, "too_many_starts")


def test_compat_admissions_spend_the_same_budget(budget: httpx.Client) -> None:
    c, user = budget, uid()
    started(c, user, "v1")
    for sid in ("old-1", "old-2"):
        r = c.post("/user/stream", json={"userId": user, "streamId": sid})
        assert ok(r)["message"] == "Stream added successfully"
    problem(start(c, user, "v1-again"), 429, "too_many_starts")
    r = c.post("/user/stream", json={"userId": user, "streamId": "old-3"})
    assert problem(r, 429, "too_many_starts")["retry_after_s"] == int(r.headers["retry-after"])
    renewed = c.post("/user/stream", json={"userId": user, "streamId": "old-1"})  # a renewal
    assert ok(renewed)["activeStreams"] == 3
    assert sorted(active_ids(c, user)) == ["old-1", "old-2", "v1"]
