"""Outage: the store stopped, killed or paused under a running service, then back.

Each test has its own valkey-server on a fixed free port (so it can come back on the same
address) and runs the service with ``store_timeout_ms=300``. Every request is timed: none
may hang past the store timeout plus a margin, whatever the store is doing. The last test
checks that bound on the store itself, in process, where client-side delays cannot hide it.
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest

from streamlimit.errors import StoreUnavailable
from streamlimit.models import Limits
from streamlimit.settings import Settings
from streamlimit.store.connect import store_client
from streamlimit.store.redis import RedisStore
from tests.servers import RedisServer, Service

TIMEOUT_MS = 300
FAST_S = 1.5  # any answer while the store is out: well under 2 s; a hang would exceed it
# one request at a time, store paused: the timeout, plus as much again for HTTP and a stalled
# machine (the bound itself is checked in process, below); a hang would take far longer
PAUSED_S = 2 * TIMEOUT_MS / 1000 + 0.25
RECOVERY_S = 5.0

Factory = Callable[..., Service]
Timed = tuple[httpx.Response, float]


@pytest.fixture
def store(private_store: RedisServer) -> RedisServer:
    return private_store


def client() -> httpx.AsyncClient:
    # no keep-alive: no request can meet a connection the server is closing as idle
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=0)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(10.0))


@asynccontextmanager
async def clients(n: int = 8) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Several clients for a burst: one httpx pool alone adds its own delay to every answer."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(client()) for _ in range(n)]


async def burst(cs: list[httpx.AsyncClient], calls: list[tuple[str, str, Any]]) -> list[Timed]:
    """All ``calls`` (method, url, body) at once, each timed on its own."""
    return list(await asyncio.gather(*(timed(cs[i % len(cs)], *call) for i, call in enumerate(calls))))


def fresh_user(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}"


async def timed(c: httpx.AsyncClient, method: str, url: str, body: Any = None) -> Timed:
    t0 = time.monotonic()
    r = await c.request(method, url, json=body)
    return r, time.monotonic() - t0


def store_backed(user: str, stream: str) -> dict[str, tuple[str, str, Any]]:
    """Every request that needs the store: name -> (method, path, JSON body)."""
    v1 = f"/v1/users/{user}"
    return {
        "start": ("POST", f"{v1}/streams", {"stream_id": "during-outage"}),
        "heartbeat": ("POST", f"{v1}/streams/{stream}/heartbeat", None),
        "stop": ("DELETE", f"{v1}/streams/{stream}", None),
        "list": ("GET", f"{v1}/streams", None),
        "stop_all": ("DELETE", f"{v1}/streams", None),
        "limit_get": ("GET", f"{v1}/limit", None),
        "limit_put": ("PUT", f"{v1}/limit", {"limit": 5}),
        "limit_clear": ("DELETE", f"{v1}/limit", None),
        "compat_get": ("GET", f"/user/stream?userId={user}", None),
        "compat_post": ("POST", "/user/stream", {"userId": user}),
        "compat_delete": ("DELETE", "/user/stream", {"userId": user}),
        "readyz": ("GET", "/readyz", None),
    }


def is_degraded(r: httpx.Response) -> bool:
    return bool(r.headers.get("x-streamlimit-degraded") == "1")


def assert_unavailable(name: str, r: httpx.Response) -> None:
    assert r.status_code == 503, f"{name}: {r.status_code} {r.text}"
    assert r.headers["content-type"] == "application/problem+json", f"{name}: {r.headers}"
    assert r.json()["code"] == "store_unavailable", f"{name}: {r.text}"
    if "/user/stream" in str(r.request.url):  # original clients read `message`
        assert isinstance(r.json()["message"], str), f"{name}: {r.text}"
    assert r.headers.get("retry-after", "").isdigit(), f"{name}: {r.headers}"
    assert not is_degraded(r), f"{name}: {r.headers}"


def assert_degraded_start(name: str, r: httpx.Response, user: str) -> None:
    assert r.status_code in (200, 201), f"{name}: {r.status_code} {r.text}"
    assert is_degraded(r), f"{name}: {r.headers}"
    body = r.json()
    assert body["degraded"] is True, f"{name}: {body}"
    assert body["user_id"] == user, f"{name}: {body}"


async def setup_stream(svc: Service, user: str, stream: str) -> None:
    """One real start, so the service's pool holds live connections when the store goes."""
    async with client() as c:
        r = await c.post(f"{svc.url}/v1/users/{user}/streams", json={"stream_id": stream})
        assert r.status_code == 201, r.text


def starts_and_lists(svc: Service, user: str, n: int) -> list[tuple[str, str, Any]]:
    v1 = f"{svc.url}/v1/users/{user}/streams"
    return [("POST", v1, {"stream_id": f"c{i}"}) if i % 2 else ("GET", v1, None) for i in range(n)]


async def deny_while_out(svc: Service, user: str, stream: str, one_s: float) -> None:
    """Each store-backed request alone within ``one_s``, then 100 at once within FAST_S."""
    async with clients() as cs:
        for name, (method, path, body) in store_backed(user, stream).items():
            r, took = await timed(cs[0], method, svc.url + path, body)
            assert took < one_s, f"{name} took {took:.2f} s"
            assert_unavailable(name, r)
        r, took = await timed(cs[0], "GET", f"{svc.url}/healthz")
        assert (r.status_code, took < one_s) == (200, True), (r.text, took)
        for r, took in await burst(cs, starts_and_lists(svc, user, 100)):
            assert took < FAST_S, f"{r.request.method} {r.request.url.path} took {took:.2f} s"
            assert_unavailable("concurrent", r)


async def allow_while_out(svc: Service, user: str, stream: str, one_s: float) -> None:
    """Starts and heartbeats degrade, stops succeed, the rest is 503; 100 starts at once too."""
    async with clients() as cs:
        results = {
            n: await timed(cs[0], m, svc.url + p, b) for n, (m, p, b) in store_backed(user, stream).items()
        }
        for name, (_, took) in results.items():
            assert took < one_s, f"{name} took {took:.2f} s"
        assert_degraded_start("start", results["start"][0], user)
        assert results["start"][0].json()["stream_id"] == "during-outage"
        hb = results["heartbeat"][0]
        assert (hb.status_code, is_degraded(hb), hb.json()["degraded"]) == (200, True, True), hb.text
        assert results["stop"][0].status_code == 204, results["stop"][0].text
        for name in ("list", "stop_all", "limit_get", "limit_put", "limit_clear", "compat_get", "readyz"):
            assert_unavailable(name, results[name][0])
        for name in ("compat_post", "compat_delete"):  # the compat start and stop degrade too
            r = results[name][0]
            assert (r.status_code, is_degraded(r)) == (200, True), f"{name}: {r.status_code} {r.text}"
        r, _ = await timed(cs[0], "GET", f"{svc.url}/healthz")
        assert r.status_code == 200, r.text
        starts = [("POST", f"{svc.url}/v1/users/{user}/streams", {"stream_id": f"c{i}"}) for i in range(100)]
        for r, took in await burst(cs, starts):
            assert took < FAST_S, f"start took {took:.2f} s"
            assert_degraded_start("concurrent start", r, user)


async def serves_again(svc: Service) -> None:
    """Ready within RECOVERY_S, then real (not degraded) answers, also for a burst at once."""
    async with clients() as cs:
        deadline = time.monotonic() + RECOVERY_S
        while (r := await cs[0].get(f"{svc.url}/readyz")).status_code != 200:
            assert time.monotonic() < deadline, (
                f"not ready {RECOVERY_S} s after the store came back: {r.text}"
            )
            await asyncio.sleep(0.05)
        users = [fresh_user("after") for _ in range(20)]
        starts = [("POST", f"{svc.url}/v1/users/{u}/streams", {"stream_id": "after"}) for u in users]
        for u, (r, _) in zip(users, await burst(cs, starts), strict=True):
            assert r.status_code == 201, r.text
            body = r.json()
            assert (body["user_id"], body["active"], body["degraded"]) == (u, 1, False), body
            assert not is_degraded(r), r.headers
        for u in users[:5]:  # each reply belongs to its own request: no stale replies
            listing = (await cs[0].get(f"{svc.url}/v1/users/{u}/streams")).json()
            assert [s["stream_id"] for s in listing["streams"]] == ["after"], listing
            assert (listing["user_id"], listing["active"]) == (u, 1), listing


def assert_same_process(svc: Service, pid: int) -> None:
    assert svc.proc is not None
    assert (svc.proc.pid, svc.proc.poll()) == (pid, None), svc.log_path.read_text()


def test_deny_answers_503_quickly_while_the_store_is_down_then_recovers(
    store: RedisServer, service_factory: Factory
) -> None:
    svc = service_factory(store.url, on_store_error="deny", store_timeout_ms=TIMEOUT_MS)
    assert svc.proc is not None
    pid, user = svc.proc.pid, fresh_user("deny")
    asyncio.run(setup_stream(svc, user, "before"))
    store.stop()
    try:
        asyncio.run(deny_while_out(svc, user, "before", FAST_S))
    finally:
        store.start()
    asyncio.run(serves_again(svc))
    assert_same_process(svc, pid)


def test_allow_degrades_starts_heartbeats_and_stops_while_the_store_is_down_then_recovers(
    store: RedisServer, service_factory: Factory
) -> None:
    svc = service_factory(store.url, on_store_error="allow", store_timeout_ms=TIMEOUT_MS)
    assert svc.proc is not None
    pid, user = svc.proc.pid, fresh_user("allow")
    asyncio.run(setup_stream(svc, user, "before"))
    store.kill()  # the hard way: SIGKILL, no goodbye on the connections
    try:
        asyncio.run(allow_while_out(svc, user, "before", FAST_S))
    finally:
        store.start()
    asyncio.run(serves_again(svc))
    assert_same_process(svc, pid)


def test_a_paused_store_never_makes_a_request_hang(store: RedisServer, service_factory: Factory) -> None:
    deny = service_factory(store.url, on_store_error="deny", store_timeout_ms=TIMEOUT_MS)
    allow = service_factory(store.url, on_store_error="allow", store_timeout_ms=TIMEOUT_MS)
    user = fresh_user("paused")
    asyncio.run(setup_stream(deny, user, "before"))
    asyncio.run(setup_stream(allow, user, "other"))
    store.pause()  # SIGSTOP: connections open, commands accepted by the kernel, no answers
    try:
        asyncio.run(deny_while_out(deny, user, "before", PAUSED_S))
        asyncio.run(allow_while_out(allow, user, "other", PAUSED_S))
    finally:
        store.resume()
    asyncio.run(serves_again(deny))
    asyncio.run(serves_again(allow))


async def paused_store_calls(server: RedisServer) -> tuple[list[float], float]:
    """Four rounds of 100 simultaneous store calls, the server paused; each call timed, and the
    longest stall of this process's event loop meanwhile (a 10 ms ticker's worst lateness: the
    machine, not the store client, when this process was not scheduled)."""
    settings = Settings(store_url=server.url, store_timeout_ms=TIMEOUT_MS)
    store = RedisStore(store_client(server.url, settings))
    took: list[float] = []
    stall = 0.0
    loop = asyncio.get_running_loop()

    async def ticker() -> None:
        nonlocal stall
        while True:
            t0 = loop.time()
            await asyncio.sleep(0.01)
            stall = max(stall, loop.time() - t0 - 0.01)

    async def one(n: int) -> None:
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.list(f"bound-{n}", Limits(3))
        took.append(time.monotonic() - t0)

    # a full collection of the large pytest process can stall its event loop for ~0.2 s and
    # would be measured as a slow store call: collect first and keep the collector off meanwhile
    gc.collect()
    gc.disable()
    try:
        await store.list("bound", Limits(3))  # connected, scripts loaded
        server.pause()
        ticking = asyncio.create_task(ticker())
        for _ in range(4):
            await asyncio.gather(*(one(n) for n in range(100)))
        ticking.cancel()
    finally:
        gc.enable()
        server.resume()
        await store.close()
    return took, stall


def test_no_store_call_outlives_the_store_timeout_while_the_store_is_paused(store: RedisServer) -> None:
    """The bound itself, in process (no HTTP noise): StoreUnavailable within timeout + 0.2 s.

    Through HTTP the client's own delays (~0.3 s for 100 answers at once on a small machine)
    would hide a request that takes twice the store timeout; here nothing hides it.
    """
    took, stall = asyncio.run(paused_store_calls(store))
    bound = TIMEOUT_MS / 1000 + 0.2 + stall  # a late timer is the machine's, not the client's
    slow = sorted(round(t, 3) for t in took if t >= bound)
    assert not slow, f"{len(slow)} of {len(took)} calls took {bound:.3f} s or more: {slow}"


def test_ready_without_store_keeps_an_allow_instance_in_rotation(
    store: RedisServer, service_factory: Factory
) -> None:
    """With ON_STORE_ERROR=allow every instance still answers players while the store is out, so
    READY_WITHOUT_STORE keeps it behind the load balancer: /readyz 200 "degraded" (by default
    it is 503 and every instance would leave at once). Draining still turns it 503: test_observe."""
    svc = service_factory(
        store.url, on_store_error="allow", ready_without_store=True, store_timeout_ms=TIMEOUT_MS
    )
    url = f"{svc.url}/readyz"
    r = httpx.get(url, timeout=5)
    assert (r.status_code, r.json(), is_degraded(r)) == (200, {"status": "ready"}, False)
    store.pause()
    try:
        r = httpx.get(url, timeout=5)
        assert (r.status_code, r.json(), is_degraded(r)) == (200, {"status": "degraded"}, True), r.text
    finally:
        store.resume()
    deadline = time.monotonic() + RECOVERY_S
    while (r := httpx.get(url, timeout=5)).json() != {"status": "ready"}:
        assert time.monotonic() < deadline, f"not ready again after the store came back: {r.text}"
        time.sleep(0.05)
