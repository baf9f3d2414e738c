"""The least-privilege ACL of docs/capacity.md, on a real server: it names every command the scripts
call, every branch of every script runs under it, and a script refused any read writes nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from streamlimit.errors import StoreUnavailable
from streamlimit.models import Actor, EndReason, Kick, Limits, Renewal, Start, StartStatus
from streamlimit.store.keys import HOOKS, user_keys
from streamlimit.store.pipelined import PipelinedClient
from streamlimit.store.redis import RedisStore
from streamlimit.store.resp import ReplyError
from tests.servers import RedisServer

ROOT = Path(__file__).parent.parent
LUA = ROOT / "src" / "streamlimit" / "store" / "lua"
LIMITS = Limits(2, (("basic", 1),))
TTL = 60_000
OPS = Actor("ops", "admin", "key-1", "req-1", "192.0.2.1")
PLAYER = Actor("acl", "player", "jti-1", "req-2", "198.51.100.7")
# the scripts' reads: a server refusing any one of them must leave every key as it was
READS = ("time", "zrange", "hmget", "hget", "hrandfield", "zscore", "get", "pttl", "lrange", "pexpiretime")


def documented_acl() -> str:
    doc = (ROOT / "docs" / "capacity.md").read_text()
    return next(
        line.strip() for line in doc.splitlines() if line.strip().startswith("ACL SETUSER streamlimit")
    )


def script_commands() -> set[str]:
    found = (re.findall(r"redis\.p?call\('(\w+)'", f.read_text()) for f in LUA.glob("*.lua"))
    return {c.lower() for commands in found for c in commands}


def test_the_acl_names_every_command_the_scripts_call() -> None:
    allowed = {w[1:] for w in documented_acl().split() if w.startswith("+")}
    assert script_commands() <= allowed, script_commands() - allowed
    assert set(READS) <= script_commands()


async def every_branch(store: RedisStore, snap: Callable[[], Any] | None = None) -> int:
    """Each branch of each script once, in an order that reaches it. Without ``snap``, every
    answer is checked; with it, a refused call must leave ``snap()`` as it was. Returns how many
    calls were refused."""
    u = "acl"
    refused = 0

    async def step(call: Awaitable[Any], want: Callable[[Any], bool] = lambda _: True) -> None:
        nonlocal refused
        before = snap() if snap else None
        try:
            answer = await call
        except StoreUnavailable:
            if snap is None:
                raise
            refused += 1
            assert snap() == before, "a refused script wrote something"
            return
        if snap is None:
            assert want(answer), answer

    await step(store.set_limit(u, 3, LIMITS, OPS), lambda r: r.limit == 3)  # limit set
    await step(store.set_plan(u, "basic", LIMITS), lambda r: r.plan == "basic")  # plan set
    await step(store.get_limit(u, LIMITS), lambda r: r.limit == 3)  # get
    for sid in ("a", "b", "c"):  # admit
        await step(
            store.start(u, sid, "tv", TTL, LIMITS, Start()), lambda r: r.status is StartStatus.ADMITTED
        )
    await step(store.start(u, "a", None, TTL, LIMITS, Start()), lambda r: r.status is StartStatus.RENEWED)
    await step(store.start(u, "d", None, TTL, LIMITS, Start()), lambda r: r.status is StartStatus.REFUSED)
    await step(store.set_limit(u, 1, LIMITS, OPS), lambda r: r.limit == 1)
    # evict down to the lowered limit: two tombstones, two events
    await step(
        store.start(u, "d", None, TTL, LIMITS, Start(evict_oldest=True, actor=PLAYER)),
        lambda r: r.status is StartStatus.ADMITTED and len(r.evicted) == 3 and r.active == 1,
    )
    await step(store.heartbeat(u, "a", TTL, LIMITS), lambda r: r.ended.reason is EndReason.EVICTED)
    await step(store.heartbeat(u, "d", TTL, LIMITS), lambda r: r.stream is not None and not r.readmitted)
    await step(store.heartbeat(u, "new", TTL, LIMITS), lambda r: r.stream is None and r.ended is None)
    await step(store.set_limit(u, None, LIMITS, OPS), lambda r: r.limit == 1 and r.source == "plan")
    await step(store.set_plan(u, None, LIMITS), lambda r: r.limit == 2)  # plan cleared
    await step(store.heartbeat(u, "new", TTL, LIMITS), lambda r: r.readmitted)  # admitted again
    await step(store.stop(u, "new", TTL, OPS, True), lambda r: r.removed is not None)  # by an admin
    await step(store.heartbeat(u, "new", TTL, LIMITS), lambda r: r.ended.reason is EndReason.STOPPED_BY_ADMIN)
    await step(store.start(u, "old", None, TTL, LIMITS, Start(legacy=True)), lambda r: r.stream.legacy)
    await step(store.stop(u, None, TTL), lambda r: r.removed.stream_id == "old")  # oldest legacy
    await step(store.stop(u, None, TTL), lambda r: r.removed is None)  # none left: never a v1 one
    await step(store.stop(u, "d", TTL), lambda r: r.removed is not None)  # a player's own stop
    await step(store.start(u, "e", None, TTL, LIMITS, Start()), lambda r: r.status is StartStatus.ADMITTED)
    await step(store.stop_all(u, TTL, PLAYER), lambda r: r.stream_ids == ("e",))
    await step(store.stop_all(u, TTL, PLAYER), lambda r: r.stream_ids == ())  # nothing: no event
    await step(store.stop_all(u, TTL, PLAYER, 1), lambda r: r.retry_after_ms == 0)  # the budget: 1/min
    await step(store.stop_all(u, TTL, PLAYER, 1), lambda r: r.retry_after_ms > 0)
    # the start budget: 1 a minute, the second start refused
    await step(
        store.start(u, "f", None, TTL, LIMITS, Start(starts_per_min=1)), lambda r: r.stream is not None
    )
    await step(
        store.start(u, "g", None, TTL, LIMITS, Start(starts_per_min=1)),
        lambda r: r.status is StartStatus.TOO_MANY and r.retry_after_ms > 0,
    )
    await step(store.list(u, LIMITS), lambda r: [s.stream_id for s in r.streams] == ["f"])
    await step(  # the live channels' batch renewal: a lease renewed, a tombstone, nothing
        store.renew([(u, "f"), (u, "e"), (u, "none")], TTL),
        lambda r: r[0].expires_at_ms is not None and r[1].ended is not None and r[2] == Renewal(),
    )
    trail = ["stopped_all", "stopped_by_admin", "plan_cleared", "limit_cleared", "evicted"]
    await step(store.events(u), lambda r: [e.action for e in r][:5] == trail and r[0].actor == PLAYER)
    # devices: a reclaim by the same device, a replacement by name, one of a stream not active,
    # and a refusal (with webhooks on, it queues limit.reached once a minute)
    tv = Start(device_id="tv-1")
    await step(store.start(u, "h", None, TTL, LIMITS, tv), lambda r: r.status is StartStatus.ADMITTED)
    await step(
        store.start(u, "i", None, TTL, LIMITS, tv), lambda r: [s.stream_id for s in r.replaced] == ["h"]
    )
    await step(store.heartbeat(u, "h", TTL, LIMITS), lambda r: r.ended.reason is EndReason.REPLACED)
    await step(
        store.start(u, "j", None, TTL, LIMITS, Start(replace="i")),
        lambda r: [s.stream_id for s in r.evicted] == ["i"],
    )
    await step(
        store.start(u, "k", None, TTL, LIMITS, Start(replace="gone")),
        lambda r: r.status is StartStatus.TARGET_NOT_ACTIVE,
    )
    await step(store.start(u, "l", None, TTL, LIMITS, Start()), lambda r: r.status is StartStatus.REFUSED)
    return refused


def snapshot(raw: Redis) -> list[Any]:
    """Every key of the user, byte for byte, with its absolute expiry."""
    out: list[Any] = []
    for key in (*user_keys("acl"), HOOKS):
        out += [key, raw.dump(key), raw.pexpiretime(key)]
    return out


@pytest.fixture
def admin(any_private_store: RedisServer) -> Redis:
    return Redis(port=any_private_store.port)


def test_every_branch_of_every_script_runs_under_the_documented_acl(
    any_private_store: RedisServer, admin: Redis
) -> None:
    assert admin.execute_command(  # type: ignore[no-untyped-call]
        *documented_acl().split()
    ) in (b"OK", "OK", True)
    url = f"redis://streamlimit:CHANGE-ME@127.0.0.1:{any_private_store.port}/0"

    async def main() -> None:
        store = RedisStore(PipelinedClient.from_url(url, 2.0), hooks_max_len=1000)
        kicks: list[Kick] = []
        feed = store.feed(kicks.append, lambda: None)  # the live channels' subscription, as this user
        try:
            await store.ping()
            await feed.watch("acl")
            await every_branch(store)
            await feed.sync()
            reasons = {k.reason for k in kicks}
            assert reasons == {*EndReason, None}  # every kind of end, and admissions, under the ACL
            assert await store.estimate_active() >= 0  # the metrics' sample: SCAN, ZCOUNT, DBSIZE
            with pytest.raises(ReplyError, match="NOPERM"):
                await store._client.execute("GET", "someone-elses-key")
        finally:
            await feed.close()
            await store.close()

    asyncio.run(main())
    # nothing the scripts wrote lives forever but the override and plan
    leases, info, settings, ended, events, rate, stops, reached = user_keys("acl")
    assert admin.pttl(settings) == -2  # cleared
    assert all(admin.pttl(k) != -1 for k in (leases, info, ended, events, rate, stops, reached))
    assert admin.pttl(reached) > 0  # the refusal queued a webhook
    assert admin.xlen(HOOKS) > 0
    assert admin.pttl(ended) > 0
    assert admin.pttl(events) > 0


@pytest.mark.parametrize("read", READS)
def test_a_script_refused_a_read_writes_nothing(
    any_private_store: RedisServer, admin: Redis, read: str
) -> None:
    """Reads come before writes in every script: refused a read (here by the ACL), each call fails
    and leaves the user's keys exactly as they were, never half-written."""
    rule = " ".join(word for word in documented_acl().split() if word != f"+{read}")
    url = f"redis://streamlimit:CHANGE-ME@127.0.0.1:{any_private_store.port}/0"

    async def main() -> None:
        full = RedisStore(
            PipelinedClient.from_url(f"redis://127.0.0.1:{any_private_store.port}/0", 2.0), hooks_max_len=1000
        )
        limited = RedisStore(PipelinedClient.from_url(url, 2.0), hooks_max_len=1000)
        try:
            # some state for every branch to find: three leases, a tombstone, an event, a budget
            for sid in ("a", "b", "c"):
                await full.start("acl", sid, "tv", TTL, LIMITS, Start(starts_per_min=10))
            await full.stop("acl", "c", TTL)
            await full.set_limit("acl", 2, LIMITS, OPS)
            admin.execute_command(  # type: ignore[no-untyped-call]
                *rule.split()
            )
            assert await every_branch(limited, lambda: snapshot(admin)) > 0
        finally:
            await full.close()
            await limited.close()

    asyncio.run(main())
