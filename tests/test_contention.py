"""Contention: truly simultaneous requests for one user, split across two service processes
that share one store (the session valkey-server), under the default `allow` policy.

No retries and no sleeps: every burst is one ``asyncio.gather`` over httpx clients whose pools
hold a connection per request, so the requests really are in flight together. The burst is
spread over several clients because one httpx pool serialises its own bookkeeping: with a
single client 240 requests trickle out over seconds, with eight they all overlap.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import RedisServer, Service

LIMIT = 3  # the default limit
START_TRIALS = 5
STARTS = 240  # simultaneous starts per trial, half to each process
EXACT_TRIALS = 20
STOPS = 50

Pair = tuple[Service, Service]


@pytest.fixture(scope="module")
def services(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Two `streamlimit serve` processes on the session store; every test uses fresh users."""
    with running_pair(redis_server.url, tmp_path_factory.mktemp("contention")) as pair:
        yield pair


@contextmanager
def running_pair(store_url: str, logs: Path) -> Iterator[Pair]:
    """Two `streamlimit serve` processes on one store, stopped at the end. Their store timeout
    is 2 s, not the default 0.5 s: a burst of hundreds of starts on a stalled 2-core machine
    must be answered by the store, not by the outage policy (which has tests of its own)."""
    pair = (
        Service(store_url, logs / "a.log", store_timeout_ms=2000),
        Service(store_url, logs / "b.log", store_timeout_ms=2000),
    )
    try:
        for service in pair:
            service.start()
        yield pair
    finally:
        for service in pair:
            service.stop()


@asynccontextmanager
async def clients(n: int = 8) -> AsyncIterator[list[httpx.AsyncClient]]:
    """``n`` clients, each allowed 300 connections; request ``i`` goes through ``cs[i % n]``."""
    # no keep-alive: every request opens its own connection, and none can meet one that the
    # server is just closing as idle between trials
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=0)
    async with AsyncExitStack() as stack:
        cs = [httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(20.0)) for _ in range(n)]
        for c in cs:
            await stack.enter_async_context(c)
        yield cs


def fresh_user(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}"


def degraded(r: httpx.Response) -> bool:
    if "x-streamlimit-degraded" in r.headers:
        return True
    if r.headers.get("content-type", "").startswith(("application/json", "application/problem+json")):
        body = r.json()
        return isinstance(body, dict) and body.get("degraded") is True
    return False


def describe(responses: Sequence[httpx.Response]) -> str:
    """Status counts, and the first body of each status, for assertion messages."""
    firsts: dict[int, str] = {}
    for r in responses:
        firsts.setdefault(r.status_code, r.text[:300])
    counts = Counter(r.status_code for r in responses)
    return f"statuses {dict(counts)}; first bodies {firsts}"


def check_healthy(responses: Sequence[httpx.Response]) -> None:
    """Zero 5xx and zero degraded answers: contention is not an outage."""
    assert not [r for r in responses if r.status_code >= 500], describe(responses)
    assert not [r for r in responses if degraded(r)], f"degraded answers: {describe(responses)}"


def ids(streams: list[dict[str, Any]]) -> set[str]:
    return {s["stream_id"] for s in streams}


async def start_burst(
    cs: list[httpx.AsyncClient], pair: Pair, user: str, n: int
) -> tuple[list[httpx.Response], list[httpx.Response]]:
    """``n`` simultaneous starts with distinct stream_ids, alternating processes; then both lists."""
    calls = [
        cs[i % len(cs)].post(f"{pair[i % 2].url}/v1/users/{user}/streams", json={"stream_id": f"s{i}"})
        for i in range(n)
    ]
    responses = list(await asyncio.gather(*calls))
    listings = [await cs[0].get(f"{s.url}/v1/users/{user}/streams") for s in pair]
    return responses, listings


def check_listings(listings: Sequence[httpx.Response], admitted: set[str]) -> None:
    for listing in listings:
        assert listing.status_code == 200, listing.text
        body = listing.json()
        assert body["active"] == len(admitted), body
        assert ids(body["streams"]) == admitted, body
        assert body["remaining"] == LIMIT - len(admitted), body


async def over_limit_trials(pair: Pair) -> None:
    async with clients() as cs:
        for trial in range(START_TRIALS):
            responses, listings = await start_burst(cs, pair, fresh_user(f"burst{trial}"), STARTS)
            check_healthy(responses)
            statuses = Counter(r.status_code for r in responses)
            assert statuses == {201: LIMIT, 409: STARTS - LIMIT}, f"trial {trial}: {describe(responses)}"
            won = [r.json() for r in responses if r.status_code == 201]
            admitted = {b["stream_id"] for b in won}
            assert sorted(b["active"] for b in won) == list(range(1, LIMIT + 1)), won
            assert all(b["limit"] == LIMIT and b["degraded"] is False for b in won), won
            for r in responses:
                if r.status_code == 409:
                    body = r.json()
                    assert r.headers["content-type"] == "application/problem+json", r.headers
                    assert body["code"] == "stream_limit_reached", body
                    assert (body["active"], body["limit"]) == (LIMIT, LIMIT), body
                    assert ids(body["streams"]) == admitted, body  # full from the first refusal on
            check_listings(listings, admitted)


def test_simultaneous_starts_across_two_processes_admit_exactly_the_limit(services: Pair) -> None:
    asyncio.run(over_limit_trials(services))


async def exact_limit_trials(pair: Pair) -> None:
    async with clients(LIMIT) as cs:
        for trial in range(EXACT_TRIALS):
            responses, listings = await start_burst(cs, pair, fresh_user(f"exact{trial}"), LIMIT)
            check_healthy(responses)
            statuses = [r.status_code for r in responses]
            assert statuses == [201] * LIMIT, f"trial {trial}: {describe(responses)}"
            assert sorted(r.json()["active"] for r in responses) == list(range(1, LIMIT + 1))
            check_listings(listings, {r.json()["stream_id"] for r in responses})


def test_a_burst_of_exactly_the_limit_is_always_fully_admitted(services: Pair) -> None:
    asyncio.run(exact_limit_trials(services))


async def stop_storm(pair: Pair, user: str) -> tuple[list[httpx.Response], httpx.Response]:
    """Start `doomed` and `kept`, then DELETE `doomed` 50 times at once on both processes."""
    async with clients() as cs:
        for sid in ("doomed", "kept"):
            r = await cs[0].post(f"{pair[0].url}/v1/users/{user}/streams", json={"stream_id": sid})
            assert r.status_code == 201, r.text
        path = f"/v1/users/{user}/streams/doomed"
        calls = [cs[i % len(cs)].delete(pair[i % 2].url + path) for i in range(STOPS)]
        responses = list(await asyncio.gather(*calls))
        listing = await cs[0].get(f"{pair[1].url}/v1/users/{user}/streams")
    return responses, listing


def test_simultaneous_stops_of_one_stream_never_error_or_go_negative(services: Pair) -> None:
    responses, listing = asyncio.run(stop_storm(services, fresh_user("stops")))
    check_healthy(responses)
    assert [r.status_code for r in responses] == [204] * STOPS, describe(responses)
    assert listing.status_code == 200, listing.text
    body = listing.json()
    assert (body["active"], ids(body["streams"])) == (1, {"kept"}), body


async def compat_delete_storm(pair: Pair, user: str, streams: int) -> tuple[list[httpx.Response], Any]:
    """``streams`` compat starts, then 50 simultaneous compat `DELETE /user/stream` (the oldest)."""
    async with clients() as cs:
        for n in range(1, streams + 1):
            r = await cs[0].post(f"{pair[0].url}/user/stream", json={"userId": user})
            assert r.status_code == 200, r.text
            assert r.json()["activeStreams"] == n, r.text
        calls = [
            cs[i % len(cs)].request("DELETE", f"{pair[i % 2].url}/user/stream", json={"userId": user})
            for i in range(STOPS)
        ]
        responses = list(await asyncio.gather(*calls))
        count = await cs[0].get(f"{pair[1].url}/user/stream", params={"userId": user})
        assert count.status_code == 200, count.text
    return responses, count.json()


@pytest.mark.parametrize("streams", [1, LIMIT])
def test_simultaneous_compat_deletes_remove_each_stream_once(services: Pair, streams: int) -> None:
    responses, count = asyncio.run(compat_delete_storm(services, fresh_user("compat"), streams))
    check_healthy(responses)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: streams, 403: STOPS - streams}, describe(responses)
    removed = [r.json() for r in responses if r.status_code == 200]
    assert all(b["message"] == "Stream removed successfully" for b in removed), removed
    assert sorted(b["activeStreams"] for b in removed) == list(range(streams)), removed
    assert len({b["streamId"] for b in removed}) == streams, removed
    for r in responses:
        if r.status_code == 403:
            assert r.json()["message"] == "Operation failed! - You have 0 stream active", r.text
    assert count["activeStreams"] == 0, count


async def heartbeat_stop_trials(pair: Pair) -> None:
    """Per trial: start `s` and `kept`; then 30 heartbeats of `s` interleaved with 30 stops."""
    async with clients() as cs:
        for trial in range(5):
            user = fresh_user(f"mix{trial}")
            for sid in ("s", "kept"):
                r = await cs[0].post(f"{pair[1].url}/v1/users/{user}/streams", json={"stream_id": sid})
                assert r.status_code == 201, r.text
            url = [f"{p.url}/v1/users/{user}/streams/s" for p in pair]
            calls = [
                cs[i % len(cs)].post(f"{url[i % 2]}/heartbeat")
                if i % 4 < 2
                else cs[i % len(cs)].delete(url[i % 2])
                for i in range(60)
            ]
            responses = list(await asyncio.gather(*calls))
            check_healthy(responses)
            for r in responses:
                if r.request.method == "DELETE":
                    assert r.status_code == 204, r.text
                elif r.status_code == 200:
                    assert r.json()["stream_id"] == "s", r.text
                else:
                    assert r.status_code == 404, describe(responses)
                    assert r.json()["code"] == "stream_not_active", r.text
            body = (await cs[0].get(f"{pair[0].url}/v1/users/{user}/streams")).json()
            assert (body["active"], ids(body["streams"])) == (1, {"kept"}), body  # no heartbeat revives s


def test_concurrent_heartbeats_and_stops_of_one_stream_never_error(services: Pair) -> None:
    asyncio.run(heartbeat_stop_trials(services))


def test_many_requests_share_few_pipelined_store_connections(redis_url: str, service_factory: Any) -> None:
    """Far more simultaneous requests than store connections: they pipeline, none is degraded."""
    pair: Pair = (
        service_factory(redis_url, store_connections=1),
        service_factory(redis_url, store_connections=3),
    )

    async def trial() -> None:
        async with clients() as cs:
            responses, listings = await start_burst(cs, pair, fresh_user("pool"), STARTS)
        check_healthy(responses)
        assert Counter(r.status_code for r in responses) == {201: LIMIT, 409: STARTS - LIMIT}
        check_listings(listings, {r.json()["stream_id"] for r in responses if r.status_code == 201})

    asyncio.run(trial())
