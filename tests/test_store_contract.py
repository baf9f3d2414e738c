"""One contract, every store: memory (fake clock), Redis, embedded://, Cluster and Sentinel."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamlimit.models import Limits, Start, StartStatus, Stream
from streamlimit.settings import Settings
from streamlimit.store.base import Store
from streamlimit.store.connect import open_store
from streamlimit.store.memory import FakeClock, MemoryStore
from tests.servers import RedisServer
from tests.topologies import Cluster, SentinelGroup

Body = Callable[[Store, "Backend"], Awaitable[None]]


@dataclass
class Backend:
    name: str
    url: str
    ttl_ms: int  # a lease length short enough to wait out on a real server
    clock: FakeClock | None = None

    async def advance(self, ms: int) -> None:
        """Let ``ms`` pass on the store's clock."""
        if self.clock is not None:
            self.clock.advance(ms)
        else:
            await asyncio.sleep(ms / 1000 + 0.02)

    def run(self, body: Body) -> None:
        async def main() -> None:
            if self.clock is not None:
                store: Store = MemoryStore(self.clock)
            else:
                store = await open_store(Settings(store_url=self.url))
            try:
                await body(store, self)
            finally:
                await store.close()

        asyncio.run(main())


# memory:// is the fast tier (make test-quick); the real servers run in make test
SLOW = pytest.mark.slow


@pytest.fixture(
    params=[
        "memory",
        *(pytest.param(name, marks=SLOW) for name in ("redis", "embedded", "cluster", "sentinel")),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        yield Backend("memory", "memory://", 90_000, FakeClock())
    elif request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.command("FLUSHALL")
        yield Backend("redis", server.url, 250)
    elif request.param in ("cluster", "sentinel"):
        topology: Cluster | SentinelGroup = request.getfixturevalue(
            "cluster" if request.param == "cluster" else "sentinel_group"
        )
        topology.flush()
        yield Backend(request.param, topology.url, 250)
    else:
        yield Backend("embedded", f"embedded://{tmp_path / 'store'}", 250)


def contract(body: Body) -> Callable[[Backend], None]:
    def test(backend: Backend) -> None:
        backend.run(body)

    test.__name__ = body.__name__
    test.__doc__ = body.__doc__
    return test


@contract
async def test_admits_up_to_the_limit_then_refuses_with_the_active_streams(s: Store, b: Backend) -> None:
    for i, sid in enumerate(["a", "b", "c"], start=1):
        r = await s.start("u", sid, None, b.ttl_ms, Limits(3), Start())
        assert (r.status, r.active, r.limit) == (StartStatus.ADMITTED, i, 3)
        await b.advance(1) if b.clock else None
    refused = await s.start("u", "d", None, b.ttl_ms, Limits(3), Start())
    assert (refused.status, refused.active, refused.limit, refused.stream) == (
        StartStatus.REFUSED,
        3,
        3,
        None,
    )
    assert [x.stream_id for x in refused.streams] == ["a", "b", "c"]  # oldest first


@contract
async def test_starting_an_active_stream_renews_it_and_never_counts_it_twice(s: Store, b: Backend) -> None:
    first = await s.start("u", "a", "tv", b.ttl_ms, Limits(1), Start())
    await b.advance(b.ttl_ms // 2)
    again = await s.start("u", "a", "phone", b.ttl_ms, Limits(1), Start())
    assert again.status is StartStatus.RENEWED
    assert again.active == 1
    assert first.stream is not None
    assert again.stream is not None
    assert again.stream.started_at_ms == first.stream.started_at_ms
    assert again.stream.device == "tv"  # a renewal keeps the lease as it was started
    assert again.stream.expires_at_ms > first.stream.expires_at_ms


@contract
async def test_heartbeat_extends_an_active_lease_and_misses_anything_else(s: Store, b: Backend) -> None:
    started = await s.start("u", "a", None, b.ttl_ms, Limits(3), Start())
    assert started.stream is not None
    await b.advance(b.ttl_ms // 2)
    beat = await s.heartbeat("u", "a", b.ttl_ms)
    assert isinstance(beat, Stream)
    assert beat.expires_at_ms > started.stream.expires_at_ms
    await b.advance(b.ttl_ms * 3 // 4)  # past the first expiry, within the renewed one
    assert (await s.list("u", Limits(3))).active == 1
    assert await s.heartbeat("u", "unknown", b.ttl_ms) is None
    assert await s.heartbeat("nobody", "a", b.ttl_ms) is None


@contract
async def test_an_expired_lease_frees_its_slot(s: Store, b: Backend) -> None:
    await s.start("u", "a", None, b.ttl_ms, Limits(1), Start())
    assert (await s.start("u", "b", None, b.ttl_ms, Limits(1), Start())).status is StartStatus.REFUSED
    await b.advance(b.ttl_ms)
    assert await s.heartbeat("u", "a", b.ttl_ms) is None
    assert (await s.list("u", Limits(1))).active == 0
    assert (await s.start("u", "b", None, b.ttl_ms, Limits(1), Start())).status is StartStatus.ADMITTED


@contract
async def test_a_heartbeat_never_shortens_a_longer_lease(s: Store, b: Backend) -> None:
    started = await s.start("u", "legacy", None, b.ttl_ms * 10, Limits(3), Start())
    beat = await s.heartbeat("u", "legacy", b.ttl_ms)
    assert started.stream is not None
    assert isinstance(beat, Stream)
    assert beat.expires_at_ms >= started.stream.expires_at_ms


@contract
async def test_stop_removes_one_stream_or_the_oldest(s: Store, b: Backend) -> None:
    for sid in ["x", "y", "z"]:
        await s.start("u", sid, None, b.ttl_ms, Limits(3), Start())
        await b.advance(2) if b.clock else await asyncio.sleep(0.003)
    stopped = await s.stop("u", "y")
    assert stopped.removed is not None
    assert stopped.removed.stream_id == "y"
    assert stopped.active == 2
    assert (await s.stop("u", "y")).removed is None  # already gone
    oldest = await s.stop("u", None)
    assert oldest.removed is not None
    assert oldest.removed.stream_id == "x"
    assert oldest.active == 1
    assert (await s.stop("u", None)).active == 0
    none = await s.stop("u", None)
    assert (none.removed, none.active) == (None, 0)  # never negative


@contract
async def test_list_reports_streams_oldest_first_with_their_devices(s: Store, b: Backend) -> None:
    empty = await s.list("nobody", Limits(3))
    assert (empty.active, empty.limit, empty.remaining, empty.streams) == (0, 3, 3, ())
    devices: list[str | None] = ["tv", None, "", "a|b c"]
    for i, device in enumerate(devices):
        await s.start("u", f"s{i}", device, b.ttl_ms, Limits(5), Start())
        await b.advance(2) if b.clock else await asyncio.sleep(0.003)
    listed = await s.list("u", Limits(5))
    assert [x.stream_id for x in listed.streams] == ["s0", "s1", "s2", "s3"]
    assert [x.device for x in listed.streams] == devices
    assert (listed.active, listed.remaining, listed.limit_source) == (4, 1, "default")


@contract
async def test_stop_all_removes_every_lease(s: Store, b: Backend) -> None:
    for sid in ["a", "b"]:
        await s.start("u", sid, None, b.ttl_ms, Limits(3), Start())
    await s.start("other", "a", None, b.ttl_ms, Limits(3), Start())
    assert await s.stop_all("u") == 2
    assert await s.stop_all("u") == 0
    assert (await s.list("u", Limits(3))).active == 0
    assert (await s.list("other", Limits(3))).active == 1


@contract
async def test_limit_overrides_persist_until_cleared(s: Store, b: Backend) -> None:
    info = await s.get_limit("u", Limits(3))
    assert (info.limit, info.is_default) == (3, True)
    assert (await s.set_limit("u", 1, Limits(3))).limit == 1
    assert (await s.start("u", "a", None, b.ttl_ms, Limits(3), Start())).status is StartStatus.ADMITTED
    refused = await s.start("u", "b", None, b.ttl_ms, Limits(3), Start())
    assert (refused.status, refused.limit) == (StartStatus.REFUSED, 1)
    await b.advance(b.ttl_ms)  # the override outlives every lease
    info = await s.get_limit("u", Limits(3))
    assert (info.limit, info.is_default) == (1, False)
    cleared = await s.set_limit("u", None, Limits(3))
    assert (cleared.limit, cleared.is_default) == (3, True)


@contract
async def test_lowering_the_limit_stops_nothing_but_refuses_new_streams(s: Store, b: Backend) -> None:
    for sid in ["a", "b", "c"]:
        await s.start("u", sid, None, b.ttl_ms, Limits(3), Start())
    await s.set_limit("u", 1, Limits(3))
    listed = await s.list("u", Limits(3))
    assert (listed.active, listed.limit, listed.remaining) == (3, 1, 0)
    assert (await s.start("u", "d", None, b.ttl_ms, Limits(3), Start())).status is StartStatus.REFUSED
    assert (await s.start("u", "a", None, b.ttl_ms, Limits(3), Start())).status is StartStatus.RENEWED
    await s.stop("u", "a")
    await s.stop("u", "b")
    assert (await s.start("u", "d", None, b.ttl_ms, Limits(3), Start())).status is StartStatus.REFUSED
    await s.stop("u", "c")
    assert (await s.start("u", "d", None, b.ttl_ms, Limits(3), Start())).status is StartStatus.ADMITTED


@contract
async def test_a_zero_limit_refuses_every_start(s: Store, b: Backend) -> None:
    await s.set_limit("u", 0, Limits(3))
    refused = await s.start("u", "a", None, b.ttl_ms, Limits(3), Start())
    assert (refused.status, refused.active, refused.streams) == (StartStatus.REFUSED, 0, ())


@contract
async def test_users_are_independent(s: Store, b: Backend) -> None:
    assert (await s.start("u1", "a", None, b.ttl_ms, Limits(1), Start())).status is StartStatus.ADMITTED
    assert (await s.start("u2", "a", None, b.ttl_ms, Limits(1), Start())).status is StartStatus.ADMITTED
    assert (await s.start("u1", "b", None, b.ttl_ms, Limits(1), Start())).status is StartStatus.REFUSED


@pytest.mark.slow
def test_an_idle_user_leaves_only_its_limit_override_and_audit_trail_behind(
    redis_server: RedisServer,
) -> None:
    """Lease keys expire with their last lease; the limit override is configuration and stays,
    and the audit trail (here: the limit change) expires on its own, after 30 days."""
    redis_server.command("FLUSHALL")
    backend = Backend("redis", redis_server.url, 150)

    async def body(s: Store, b: Backend) -> None:
        await s.set_limit("u", 2, Limits(3))
        await s.start("u", "a", "tv", b.ttl_ms, Limits(3), Start())
        await s.start("v", "a", None, b.ttl_ms, Limits(3), Start())
        assert redis_server.command("DBSIZE").strip() == b":6"
        await b.advance(b.ttl_ms + 50)
        left = redis_server.command("KEYS", "*")
        assert left.count(b"streamlimit:") == 2, left
        assert b"streamlimit:{u:u}:limit" in left
        assert b"streamlimit:{u:u}:events" in left
        ttl_days = int(redis_server.command("PTTL", "streamlimit:{u:u}:events").strip()[1:]) / 86_400_000
        assert 29.9 < ttl_days <= 30

    backend.run(body)


def test_the_memory_store_forgets_idle_users_as_redis_expires_their_keys() -> None:
    """Every user ever looked up (a list of a random id, an expired lease) would otherwise stay
    in the process forever; what an idle user still has (an override, an audit trail, a spent
    start budget) keeps it, until that too would have expired in Redis."""
    clock = FakeClock()
    s = MemoryStore(clock)

    async def body() -> None:
        await s.set_limit("kept", 2, Limits(3))  # configuration: kept, like Redis' limit key
        admitted = await s.start("budget", "a", None, 1_000, Limits(3), Start(starts_per_min=1))
        first_epoch = admitted.epoch
        for i in range(5_000):  # lookups and leases of many users, all idle a second later
            await s.list(f"looked-up-{i}", Limits(3))
            await s.start(f"played-{i}", "a", None, 1_000, Limits(3), Start())
        clock.advance(1_001)
        for i in range(5_000):
            await s.list(f"later-{i}", Limits(3))
        assert s.users_held() < 4_000, s.users_held()  # swept: not 15,000
        assert (await s.get_limit("kept", Limits(3))).limit == 2
        again = await s.start("budget", "b", None, 1_000, Limits(3), Start(starts_per_min=1))
        assert again.status is StartStatus.TOO_MANY  # its spent budget was not forgotten
        clock.advance(60_000)
        again = await s.start("budget", "b", None, 1_000, Limits(3), Start(starts_per_min=1))
        assert again.status is StartStatus.ADMITTED
        assert again.epoch is not None
        assert first_epoch is not None
        assert again.epoch > first_epoch  # the epoch never goes back, even across forgetting
        clock.advance(30 * 86_400_000)  # the audit trail expires after 30 days, as in Redis
        assert await s.events("kept") == ()

        # a user swept within a second of its last admission would get the same epoch again:
        # like Redis' '#epoch', it is kept that second
        before = (await s.start("fence", "a", None, 1_000, Limits(3), Start())).epoch
        await s.stop("fence", "a")
        for i in range(5_000):  # enough new users for a sweep
            await s.list(f"fresh-{i}", Limits(3))
        after = (await s.start("fence", "b", None, 1_000, Limits(3), Start())).epoch
        assert before is not None
        assert after is not None
        assert after > before

    asyncio.run(body())
