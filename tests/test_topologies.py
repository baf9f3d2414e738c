"""Cluster and Sentinel for real: two services on each, contention, slot moves, replica acks.

The store contract itself runs on both topologies in test_store_contract.py; the failovers are
in test_failover.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Iterator

import pytest
from redis.crc import key_slot

from streamlimit.errors import StoreUnavailable
from streamlimit.models import Limits, Start, StartResult
from streamlimit.settings import Settings
from streamlimit.store.connect import open_store
from streamlimit.store.endpoint import Endpoint, endpoint
from streamlimit.store.keys import user_keys
from streamlimit.store.pipelined import PipelinedClient
from streamlimit.store.scripts import NAMES, source
from tests.servers import RedisServer
from tests.test_contention import Pair, exact_limit_trials, over_limit_trials, running_pair
from tests.topologies import Cluster, SentinelGroup, cmd


@pytest.fixture(scope="module", params=["cluster", "sentinel"])
def topology_pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Two `streamlimit serve` processes on the session's cluster or sentinel group."""
    topology: Cluster | SentinelGroup = request.getfixturevalue(
        "cluster" if request.param == "cluster" else "sentinel_group"
    )
    with running_pair(topology.url, tmp_path_factory.mktemp(f"pair-{request.param}")) as pair:
        yield pair


def test_simultaneous_starts_across_two_processes_admit_exactly_the_limit(topology_pair: Pair) -> None:
    asyncio.run(over_limit_trials(topology_pair))


def test_a_burst_of_exactly_the_limit_is_always_fully_admitted(topology_pair: Pair) -> None:
    asyncio.run(exact_limit_trials(topology_pair))


def test_users_spread_over_every_primary_and_scripts_are_on_each(cluster: Cluster) -> None:
    async def main() -> None:
        store = await open_store(Settings(store_url=cluster.url))
        try:
            for i in range(30):
                await store.start(f"spread-{i}", "s", None, 60_000, Limits(3), Start())
        finally:
            await store.close()

    cluster.flush()
    for p in cluster.primaries():
        cmd(p, "SCRIPT", "FLUSH")
    asyncio.run(main())
    primaries = cluster.primaries()
    assert all(cmd(p, "DBSIZE") > 0 for p in primaries), [cmd(p, "DBSIZE") for p in primaries]
    shas = [_sha1(source(name)) for name in NAMES]
    for p in primaries:  # loaded at start-up on every primary, not lazily on a first miss
        assert cmd(p, "SCRIPT", "EXISTS", *shas) == [1] * len(shas), p.port


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _same_slot_user(user: str) -> str:
    """Another user id whose keys hash to ``user``'s slot."""
    slot = key_slot(user_keys(user)[0].encode())
    return next(f"ask-{i}" for i in range(1_000_000) if key_slot(user_keys(f"ask-{i}")[0].encode()) == slot)


def test_a_slot_in_mid_migration_is_retried_until_it_moved_then_followed(cluster: Cluster) -> None:
    """A slot moves to another primary while the service uses it, as a resharding does. While
    it migrates, a script whose keys are not all on one side gets TRYAGAIN (Redis refuses
    multi-key calls then; the scripts name 6 keys, most of which do not exist): the client
    retries until the slot has moved and follows MOVED/ASK to the new owner, all within the
    store timeout; a migration that outlasts the timeout is store unavailable."""
    moving = "moving"
    newcomer = _same_slot_user(moving)  # no key of it exists yet: ASK, then TRYAGAIN
    slot = key_slot(user_keys(moving)[0].encode())

    def migrating(origin: RedisServer, target: RedisServer) -> None:
        cmd(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", cmd(origin, "CLUSTER", "MYID"))
        cmd(origin, "CLUSTER", "SETSLOT", slot, "MIGRATING", cmd(target, "CLUSTER", "MYID"))

    def finish(origin: RedisServer, target: RedisServer, after_s: float = 0.0) -> float:
        time.sleep(after_s)
        keys = cmd(origin, "CLUSTER", "GETKEYSINSLOT", slot, 100)
        if keys:
            cmd(origin, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        for node in cluster.primaries():
            cmd(node, "CLUSTER", "SETSLOT", slot, "NODE", cmd(target, "CLUSTER", "MYID"))
        return time.monotonic()

    async def answered_at(call: Awaitable[StartResult]) -> tuple[StartResult, float]:
        result = await call
        return result, time.monotonic()

    async def main() -> None:
        store = await open_store(Settings(store_url=cluster.url, store_timeout_ms=1500))
        try:
            await store.start(moving, "a", None, 60_000, Limits(3), Start())
            origin = cluster.owner_of(user_keys(moving)[0])
            target = next(p for p in cluster.primaries() if p is not origin)
            migrating(origin, target)
            moved = asyncio.create_task(asyncio.to_thread(finish, origin, target, 0.3))
            (renewed, t1), (admitted, t2) = await asyncio.gather(
                answered_at(store.start(moving, "a", None, 60_000, Limits(3), Start())),
                answered_at(store.start(newcomer, "x", None, 60_000, Limits(3), Start())),
            )
            done = await moved
            assert (renewed.active, renewed.degraded) == (1, False)
            assert (admitted.active, admitted.degraded) == (1, False)
            assert min(t1, t2) >= done - 0.05, "answered before the slot had moved: never refused?"
            assert cmd(target, "EXISTS", user_keys(newcomer)[0]) == 1
            assert [s.stream_id for s in (await store.list(moving, Limits(3))).streams] == ["a"]

            migrating(target, origin)  # moving it back, stuck past the store timeout
            try:
                with pytest.raises(StoreUnavailable, match="still migrating"):
                    await store.start(moving, "b", None, 60_000, Limits(3), Start())
            finally:
                finish(target, origin)
            assert (await store.start(moving, "b", None, 60_000, Limits(3), Start())).active == 2
        finally:
            await store.close()

    asyncio.run(main())


@pytest.mark.parametrize("topology", ["cluster", "sentinel"])
def test_replica_ack_answers_after_a_replica_holds_the_write(
    request: pytest.FixtureRequest, topology: str
) -> None:
    group: Cluster | SentinelGroup = request.getfixturevalue(
        "cluster" if topology == "cluster" else "sentinel_group"
    )

    async def main() -> None:
        store = await open_store(Settings(store_url=group.url, replica_ack=1, replica_ack_timeout_ms=200))
        try:
            results = await asyncio.gather(
                *(store.start(f"acked-{i}", "s", None, 60_000, Limits(3), Start()) for i in range(50))
            )
            assert all(r.active == 1 for r in results)
        finally:
            await store.close()

    asyncio.run(main())


def test_replica_ack_that_cannot_be_met_is_store_unavailable(sentinel_group: SentinelGroup) -> None:
    """Asking for 2 replicas of a group that has 1: every write fails rather than over-promise."""

    async def main() -> None:
        settings = Settings(store_url=sentinel_group.url, replica_ack=2, replica_ack_timeout_ms=50)
        store = await open_store(settings)
        try:
            with pytest.raises(StoreUnavailable, match="1 of 2 replica"):
                await store.start("unacked", "s", None, 60_000, Limits(3), Start())
        finally:
            await store.close()

    asyncio.run(main())


def test_a_replica_is_never_taken_for_the_primary(sentinel_group: SentinelGroup) -> None:
    """Should anything name a replica as the primary (a stale sentinel), ROLE refuses it."""
    primary = sentinel_group.current_primary()
    replica = sentinel_group.replica if primary is sentinel_group.primary else sentinel_group.primary

    async def main() -> None:
        async def stale() -> Endpoint:
            return endpoint(replica.url)[0]

        client = PipelinedClient(stale, 1.0, primary_only=True)
        with pytest.raises(StoreUnavailable, match="not the primary"):
            await client.execute("PING")
        await client.aclose()

    asyncio.run(main())
