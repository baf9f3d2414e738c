"""One contract, every store: memory (fake clock), Redis, embedded://, Cluster and Sentinel."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamlimit.models import Actor, Beat, Ended, EndReason, Limits, Start, StartStatus, Stream
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
    started = await s.start("u", "a", "tv", b.ttl_ms, Limits(1), Start())
    assert started.stream is not None
    await b.advance(b.ttl_ms // 2)
    beat = await s.heartbeat("u", "a", b.ttl_ms, Limits(1))
    assert (beat.readmitted, beat.ended) == (False, None)
    assert beat.stream is not None
    assert beat.stream.expires_at_ms > started.stream.expires_at_ms
    assert beat.stream == Stream(  # the same lease, only later to expire
        "u", "a", "tv", started.stream.started_at_ms, beat.stream.expires_at_ms, started.epoch
    )
    await b.advance(b.ttl_ms * 3 // 4)  # past the first expiry, within the renewed one
    assert (await s.list("u", Limits(1))).active == 1
    assert await s.heartbeat("u", "unknown", b.ttl_ms, Limits(1)) == Beat()  # no slot free
    assert await s.heartbeat("nobody", "a", b.ttl_ms, Limits(0)) == Beat()
    listed = await s.list("u", Limits(1))
    assert [x.stream_id for x in listed.streams] == ["a"]  # a miss admits nothing
    assert (await s.list("nobody", Limits(1))).active == 0


@contract
async def test_an_expired_lease_frees_its_slot(s: Store, b: Backend) -> None:
    await s.start("u", "a", None, b.ttl_ms, Limits(1), Start())
    assert (await s.start("u", "b", None, b.ttl_ms, Limits(1), Start())).status is StartStatus.REFUSED
    await b.advance(b.ttl_ms)
    assert (await s.list("u", Limits(1))).active == 0
    assert (await s.start("u", "b", None, b.ttl_ms, Limits(1), Start())).status is StartStatus.ADMITTED
    assert await s.heartbeat("u", "a", b.ttl_ms, Limits(1)) == Beat()  # b holds the only slot now


@contract
async def test_a_heartbeat_never_shortens_a_longer_lease(s: Store, b: Backend) -> None:
    started = await s.start("u", "legacy", None, b.ttl_ms * 10, Limits(3), Start())
    beat = await s.heartbeat("u", "legacy", b.ttl_ms, Limits(3))
    assert started.stream is not None
    assert beat.stream is not None
    assert beat.stream.expires_at_ms == started.stream.expires_at_ms


@contract
async def test_stop_removes_one_stream_or_the_oldest_legacy_one(s: Store, b: Backend) -> None:
    ttl, legacy = b.ttl_ms, Start(legacy=True)
    for sid, how in [("x", legacy), ("y", legacy), ("z", Start()), ("w", legacy)]:
        await s.start("u", sid, None, ttl, Limits(4), how)
        await b.advance(2) if b.clock else await asyncio.sleep(0.003)
    stopped = await s.stop("u", "y", ttl)
    assert stopped.removed is not None
    assert (stopped.removed.stream_id, stopped.removed.legacy, stopped.active) == ("y", True, 3)
    assert stopped.at_ms is not None
    assert stopped.at_ms >= stopped.removed.started_at_ms
    assert (await s.stop("u", "y", ttl)).removed is None  # already gone
    oldest = await s.stop("u", None, ttl)
    assert oldest.removed is not None
    assert (oldest.removed.stream_id, oldest.active) == ("x", 2)
    next_oldest = await s.stop("u", None, ttl)
    assert next_oldest.removed is not None
    assert next_oldest.removed.stream_id == "w"  # not z, older but a v1 lease
    none = await s.stop("u", None, ttl)
    assert (none.removed, none.active) == (None, 1)  # only legacy leases are stopped without an id
    assert (await s.stop("u", "z", ttl)).active == 0
    none = await s.stop("u", None, ttl)
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
    stopped = await s.stop_all("u", b.ttl_ms)
    assert stopped.stream_ids == ("a", "b")  # oldest first (a tie goes to the smaller id)
    again = await s.stop_all("u", b.ttl_ms)
    assert again.stream_ids == ()
    assert again.at_ms >= stopped.at_ms
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
    await s.stop("u", "a", b.ttl_ms)
    await s.stop("u", "b", b.ttl_ms)
    assert (await s.start("u", "d", None, b.ttl_ms, Limits(3), Start())).status is StartStatus.REFUSED
    await s.stop("u", "c", b.ttl_ms)
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


async def tick(b: Backend) -> None:
    """Let the store's clock move on, so that the next lease starts later."""
    await b.advance(2) if b.clock else await asyncio.sleep(0.003)


@contract
async def test_each_lease_keeps_its_own_epoch_through_renewals_and_heartbeats(s: Store, b: Backend) -> None:
    ttl, lim = b.ttl_ms * 40, Limits(2)
    a = await s.start("u", "a", None, ttl, lim, Start())
    bb = await s.start("u", "b", None, ttl, lim, Start())
    assert a.stream is not None
    assert bb.stream is not None
    assert a.epoch is not None
    assert bb.epoch is not None
    assert (a.epoch, bb.epoch) == (a.stream.epoch, bb.stream.epoch)
    assert a.epoch < bb.epoch
    retried = await s.start("u", "a", None, ttl, lim, Start())  # a retried after b's admission
    assert retried.stream is not None
    assert (retried.status, retried.epoch, retried.stream.epoch) == (StartStatus.RENEWED, a.epoch, a.epoch)
    assert (await s.start("u", "b", None, ttl, lim, Start())).epoch == bb.epoch
    beat = await s.heartbeat("u", "a", ttl, lim)
    assert beat.stream is not None
    assert beat.stream.epoch == a.epoch
    listed = await s.list("u", lim)
    assert [(x.stream_id, x.epoch) for x in listed.streams] == [("a", a.epoch), ("b", bb.epoch)]
    refused = await s.start("u", "c", None, ttl, lim, Start())
    assert (refused.status, refused.epoch) == (StartStatus.REFUSED, None)


@contract
async def test_an_evicting_start_evicts_down_to_a_lowered_limit(s: Store, b: Backend) -> None:
    ttl = b.ttl_ms * 40
    started = []
    for sid in ["a", "b", "c"]:
        started.append((await s.start("u", sid, None, ttl, Limits(3), Start())).stream)
        await tick(b)
    await s.set_limit("u", 1, Limits(3))
    d = await s.start("u", "d", None, ttl, Limits(3), Start(evict_oldest=True, actor=Actor("tv")))
    assert d.stream is not None
    assert (d.status, d.active, d.limit) == (StartStatus.ADMITTED, 1, 1)
    assert d.evicted == tuple(started)  # all three, oldest first, as they were
    listed = await s.list("u", Limits(3))
    assert [x.stream_id for x in listed.streams] == ["d"]
    for sid in ["a", "b", "c"]:
        ended = Ended(sid, d.stream.started_at_ms, EndReason.EVICTED, "d")
        assert await s.heartbeat("u", sid, ttl, Limits(3)) == Beat(ended=ended)
    trail = [(e.action, e.actor.name, e.streams) for e in await s.events("u") if e.action == "evicted"]
    assert sorted(trail) == [("evicted", "tv", (sid,)) for sid in ["a", "b", "c"]]

    # a limit of 2 with 3 active: two go, and the new one makes 2
    await s.set_limit("u", 3, Limits(3))
    for sid in ["e", "f"]:
        await tick(b)
        await s.start("u", sid, None, ttl, Limits(3), Start())
    await s.set_limit("u", 2, Limits(3))
    g = await s.start("u", "g", None, ttl, Limits(3), Start(evict_oldest=True))
    assert (g.status, g.active, [x.stream_id for x in g.evicted]) == (StartStatus.ADMITTED, 2, ["d", "e"])
    assert [x.stream_id for x in (await s.list("u", Limits(3))).streams] == ["f", "g"]


@contract
async def test_a_heartbeat_admits_an_expired_stream_again_when_a_slot_is_free(s: Store, b: Backend) -> None:
    ttl = b.ttl_ms
    first = await s.start("u", "a", "tv", ttl, Limits(2), Start(legacy=True))
    assert first.stream is not None
    assert first.epoch is not None
    await b.advance(ttl)  # expired, never stopped nor evicted: no tombstone
    assert (await s.list("u", Limits(2))).active == 0
    again = await s.heartbeat("u", "a", ttl, Limits(2))
    assert (again.readmitted, again.ended) == (True, None)
    assert again.stream is not None
    assert again.stream.epoch is not None
    assert again.stream.epoch > first.epoch  # a new lease, with a new epoch
    assert again.stream.started_at_ms >= first.stream.expires_at_ms  # started now
    assert again.stream.expires_at_ms == again.stream.started_at_ms + ttl
    assert (again.stream.stream_id, again.stream.device, again.stream.legacy) == ("a", None, False)
    listed = await s.list("u", Limits(2))
    assert listed.streams == (again.stream,)
    renewed = await s.heartbeat("u", "a", ttl, Limits(2))  # from now on, an ordinary renewal
    assert renewed.stream is not None
    assert (renewed.readmitted, renewed.stream.epoch) == (False, again.stream.epoch)

    # a stream never seen is admitted the same way; at the limit, nothing is
    other = await s.heartbeat("u", "b", ttl, Limits(2))
    assert other.readmitted
    assert other.stream is not None
    assert other.stream.epoch is not None
    assert other.stream.epoch > again.stream.epoch
    assert await s.heartbeat("u", "c", ttl, Limits(2)) == Beat()
    assert [x.stream_id for x in (await s.list("u", Limits(2))).streams] == ["a", "b"]
    await s.set_limit("u", 0, Limits(2))  # the user's own limit counts, not only the default
    await b.advance(ttl)
    assert await s.heartbeat("u", "a", ttl, Limits(2)) == Beat()
    assert (await s.list("u", Limits(2))).active == 0


@contract
async def test_stops_leave_tombstones_that_late_heartbeats_get(s: Store, b: Backend) -> None:
    ttl, lim = b.ttl_ms, Limits(5)
    for sid in ["a", "b", "c", "d"]:
        await s.start("u", sid, None, ttl, lim, Start())
        await tick(b)
    by_player = await s.stop("u", "c", ttl, Actor("me"))
    by_admin = await s.stop("u", "d", ttl, Actor("ops"), audit=True)
    everything = await s.stop_all("u", ttl, Actor("me"))
    assert everything.stream_ids == ("a", "b")
    assert by_player.at_ms is not None
    assert by_admin.at_ms is not None
    expected = {
        "a": Ended("a", everything.at_ms, EndReason.STOPPED_ALL),
        "b": Ended("b", everything.at_ms, EndReason.STOPPED_ALL),
        "c": Ended("c", by_player.at_ms, EndReason.STOPPED),
        "d": Ended("d", by_admin.at_ms, EndReason.STOPPED_BY_ADMIN),
    }
    for sid, ended in expected.items():
        assert await s.heartbeat("u", sid, ttl, lim) == Beat(ended=ended), sid
    assert (await s.list("u", lim)).active == 0  # none of them was admitted again
    trail = [(e.action, e.actor.name, e.streams) for e in await s.events("u")]
    assert trail == [("stopped_all", "me", ("a", "b")), ("stopped_by_admin", "ops", ("d",))]
    assert (await s.stop_all("u", ttl, Actor("me"))).stream_ids == ()
    assert len(await s.events("u")) == 2  # a stop-all that stopped nothing is not recorded
    assert (await s.stop("u", "gone", ttl, Actor("ops"), audit=True)).removed is None
    assert await s.heartbeat("u", "gone", ttl, Limits(0)) == Beat()  # stopping nothing buries nothing
    assert len(await s.events("u")) == 2

    await b.advance(ttl)  # the tombstones last one lease TTL; then the id may come back
    back = await s.heartbeat("u", "c", ttl, lim)
    assert (back.readmitted, back.ended) == (True, None)


@contract
async def test_a_start_clears_the_tombstone_of_the_stream_it_admits(s: Store, b: Backend) -> None:
    ttl, lim = b.ttl_ms * 40, Limits(1)
    await s.start("u", "a", None, ttl, lim, Start())
    await s.stop("u", "a", ttl)
    assert (await s.heartbeat("u", "a", ttl, lim)).ended is not None
    assert (await s.start("u", "a", None, ttl, lim, Start())).status is StartStatus.ADMITTED
    beat = await s.heartbeat("u", "a", ttl, lim)
    assert (beat.ended, beat.readmitted) == (None, False)
    assert beat.stream is not None


@contract
async def test_a_refused_start_keeps_the_tombstone(s: Store, b: Backend) -> None:
    ttl, lim = b.ttl_ms * 40, Limits(1)
    await s.start("u", "a", None, ttl, lim, Start())
    b_start = await s.start("u", "b", None, ttl, lim, Start(evict_oldest=True))
    assert b_start.stream is not None
    ended = Ended("a", b_start.stream.started_at_ms, EndReason.EVICTED, "b")
    refused = await s.start("u", "a", None, ttl, lim, Start())  # the evicted player retries
    assert refused.status is StartStatus.REFUSED
    assert await s.heartbeat("u", "a", ttl, lim) == Beat(ended=ended)


@contract
async def test_a_stop_without_id_never_removes_a_v1_lease(s: Store, b: Backend) -> None:
    ttl = b.ttl_ms * 40
    v1 = await s.start("u", "v1", None, ttl, Limits(3), Start())
    await tick(b)
    compat = await s.start("u", "k1", None, ttl, Limits(3), Start(legacy=True))
    assert v1.stream is not None
    assert compat.stream is not None
    assert (v1.stream.legacy, compat.stream.legacy) == (False, True)
    stopped = await s.stop("u", None, ttl)
    assert stopped.removed == compat.stream
    assert stopped.active == 1
    nothing = await s.stop("u", None, ttl)
    assert (nothing.removed, nothing.active) == (None, 1)
    assert (await s.list("u", Limits(3))).streams == (v1.stream,)
    beat = await s.heartbeat("u", "v1", ttl, Limits(3))
    assert (beat.ended, beat.readmitted) == (None, False)
    assert beat.stream is not None


@contract
async def test_the_start_budget_retry_after_is_the_same_on_every_store(s: Store, b: Backend) -> None:
    """7 a minute: a period of 60_000_000 // 7 = 8_571_428 us. After a burst of 7 admissions from
    t1 on, an 8th at t8 waits 8 periods - 60 s - (t8 - t1) = 8571.424 ms - (t8 - t1), rounded up."""
    ttl, lim, how = b.ttl_ms * 40, Limits(10), Start(starts_per_min=7)
    starts = [await s.start("u", f"s{i}", None, ttl, lim, how) for i in range(7)]
    assert all(r.status is StartStatus.ADMITTED for r in starts), starts
    late = await s.start("u", "late", None, ttl, lim, how)
    after = await s.stop("u", "none", ttl)  # only for the store's time: after the late start
    first, last = starts[0].stream, starts[-1].stream
    assert first is not None
    assert last is not None
    assert after.at_ms is not None
    assert (late.status, late.stream, late.evicted) == (StartStatus.TOO_MANY, None, ())
    t1 = first.started_at_ms
    assert 8572 - (after.at_ms - t1) <= late.retry_after_ms <= 8572 - (last.started_at_ms - t1)
    if b.clock is not None:  # the late start at t1 exactly: all of it, to the millisecond
        assert late.retry_after_ms == 8572
        await b.advance(8571)
        assert (await s.start("u", "late", None, ttl, lim, how)).retry_after_ms == 1
        await b.advance(1)
        assert (await s.start("u", "late", None, ttl, lim, how)).status is StartStatus.ADMITTED


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
        await s.stop("fence", "a", 0)  # a tombstone of no length: "fence" holds nothing after it
        for i in range(5_000):  # enough new users for a sweep
            await s.list(f"fresh-{i}", Limits(3))
        after = (await s.start("fence", "b", None, 1_000, Limits(3), Start())).epoch
        assert before is not None
        assert after is not None
        assert after > before

    asyncio.run(body())
