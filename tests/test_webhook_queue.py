"""The webhook queue's consumer-group rules, the same on memory:// and on a real Valkey: new
entries are read once, stay pending until done, are claimed by another consumer only when idle
long enough, and a claim of an entry delivered meanwhile takes nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import pytest
import redis

from streamlimit.store.hooks import MemoryHookQueue
from streamlimit.store.keys import HOOKS
from streamlimit.store.pipelined import PipelinedClient
from streamlimit.webhooks.memory_queue import STREAM, MemoryQueue
from streamlimit.webhooks.queue import Queue
from streamlimit.webhooks.redis_queue import RedisQueue
from tests.webhook_receiver import event, xadd

IDLE_MS = 30  # "long enough" in these tests: waited for real on Valkey, advanced on memory


@dataclass
class Backend:
    name: str
    stream: str
    open: Callable[[], AbstractAsyncContextManager[Queue]]
    add: Callable[[str, int], str]  # (user, at_ms) -> entry id
    idle: Callable[[int], None]  # let this many ms pass
    trim: Callable[[int], None]  # as XADD's MAXLEN does (memory: at each add)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        now = [1_000_000]
        hooks = MemoryHookQueue(max_len=5, clock=lambda: now[0])

        def add_memory(user: str, at: int) -> str:
            hooks.add(now[0], user, event(at, "limit_set", value="2"))
            return hooks.entries[-1].id

        def advance(ms: int) -> None:
            now[0] += ms

        @asynccontextmanager
        async def open_memory() -> AsyncIterator[Queue]:
            yield MemoryQueue(hooks)

        yield Backend("memory", STREAM, open_memory, add_memory, advance, lambda n: None)
        return
    url = request.getfixturevalue("redis_url")
    with redis.Redis.from_url(url, decode_responses=True) as r:

        def add_redis(user: str, at: int) -> str:
            return xadd(r.execute_command, HOOKS, user, event(at, "limit_set", value="2"), max_len=5)

        @asynccontextmanager
        async def open_redis() -> AsyncIterator[Queue]:
            client = PipelinedClient.from_url(url, 2.0)
            try:
                yield RedisQueue(client)
            finally:
                await client.aclose()

        def trim(n: int) -> None:
            r.execute_command("XTRIM", HOOKS, "MAXLEN", n)  # exact; the scripts' ~ trims whole nodes

        yield Backend("redis", HOOKS, open_redis, add_redis, lambda ms: time.sleep(ms / 1000), trim)


def run(backend: Backend, body: Callable[[Queue, str], Awaitable[None]]) -> None:
    async def main() -> None:
        async with backend.open() as q:
            await body(q, backend.stream)

    asyncio.run(main())


def test_new_entries_are_read_once_in_order_and_stay_pending_until_done(backend: Backend) -> None:
    async def body(q: Queue, s: str) -> None:
        ids = [backend.add(u, 1000 + i) for i, u in enumerate(["a", "b", "c"])]
        first = await q.read(s, "one", 2)
        assert [(e.id, e.user_id) for e in first] == [(ids[0], "a"), (ids[1], "b")]
        assert first[0].event_id == f"evt_{ids[0]}"
        assert '"action":"limit_set"' in first[0].event
        assert [e.id for e in await q.read(s, "two", 10)] == [ids[2]]  # the group reads each once
        assert await q.read(s, "one", 10) == []
        pending = await q.pending(s, 0, None, 10)
        assert [(p.id, p.deliveries) for p in pending] == [(i, 1) for i in ids]
        assert [p.id for p in await q.pending(s, 0, ids[0], 1)] == [ids[1]]  # paged
        depth = await q.depth()
        assert depth.entries == 3
        assert depth.oldest_ms == int(ids[0].split("-")[0])
        await q.done(s, ids[1])
        assert [p.id for p in await q.pending(s, 0, None, 10)] == [ids[0], ids[2]]
        assert (await q.depth()).entries == 2

    run(backend, body)


def test_a_pending_entry_is_claimed_only_when_idle_long_enough_and_only_once(backend: Backend) -> None:
    async def body(q: Queue, s: str) -> None:
        entry_id = backend.add("a", 1000)
        await q.read(s, "crashed", 10)
        assert await q.claim(s, "other", 60_000, entry_id) is None  # not idle that long
        assert await q.pending(s, 60_000, None, 10) == []
        backend.idle(IDLE_MS)
        (p,) = await q.pending(s, IDLE_MS, None, 10)
        assert p.idle_ms >= IDLE_MS
        claimed = await q.claim(s, "other", IDLE_MS, entry_id)
        assert claimed is not None
        assert claimed.user_id == "a"
        # taken: idle again from now, so a second claimer with the same rule gets nothing
        assert await q.claim(s, "third", IDLE_MS, entry_id) is None
        (p,) = await q.pending(s, 0, None, 10)
        assert p.deliveries == 2

    run(backend, body)


def test_an_entry_done_or_trimmed_meanwhile_is_claimed_by_nobody_and_leaves_the_pending_list(
    backend: Backend,
) -> None:
    async def body(q: Queue, s: str) -> None:
        done_id = backend.add("a", 1000)
        await q.read(s, "one", 10)
        await q.done(s, done_id)
        assert await q.claim(s, "two", 0, done_id) is None
        assert await q.depth() == type(await q.depth())(0, None)
        # pushed out by newer ones (the queue holds 5 here) while pending: nothing to claim either
        first = [backend.add("b", 2000 + i) for i in range(3)]
        await q.read(s, "one", 10)
        for i in range(5):
            backend.add("c", 3000 + i)
        backend.trim(5)
        for gone in first:
            assert await q.claim(s, "two", 0, gone) is None
        assert await q.pending(s, 0, None, 10) == []
        assert (await q.depth()).entries == 5

    run(backend, body)


def test_consumers_gone_for_a_day_and_holding_nothing_are_dropped_from_the_group(redis_url: str) -> None:
    async def main() -> None:
        client = PipelinedClient.from_url(redis_url, 2.0)
        q = RedisQueue(client, scan_interval_s=0, gone_after_ms=IDLE_MS)  # "a day": 30 ms here
        try:
            with redis.Redis.from_url(redis_url, decode_responses=True) as r:
                for user in ("a", "b"):
                    xadd(r.execute_command, HOOKS, user, event(1000, "plan_cleared"))
                (done,) = await q.read(HOOKS, "ended-clean", 1)
                await q.done(HOOKS, done.id)
                await q.read(HOOKS, "ended-holding", 1)
                await q.read(HOOKS, "alive", 1)
                await asyncio.sleep(IDLE_MS / 1000)
                await q.read(HOOKS, "alive", 1)  # reads every poll
                await q.streams()  # a scan
                names = {c["name"] for c in r.xinfo_consumers(HOOKS, "streamlimit")}
                assert names == {"ended-holding", "alive"}  # its entry still pending for a claim
        finally:
            await client.aclose()

    asyncio.run(main())
