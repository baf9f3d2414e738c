"""Store features on every backend: plan limits, eviction, epochs, the audit trail, the start
budget, and evicting starts racing each other. Same backends and style as the contract."""

from __future__ import annotations

import asyncio
from itertools import pairwise

from streamlimit.models import Actor, Beat, Ended, EndReason, Event, Limits, Start, StartResult, StartStatus
from streamlimit.store.base import Store
from streamlimit.store.memory import EVENTS_TTL_MS, FakeClock, MemoryStore
from tests import test_store_contract
from tests.test_store_contract import Backend

backend = test_store_contract.backend  # the contract's fixture: every store, set up the same way

ADMITTED, RENEWED, REFUSED = StartStatus.ADMITTED, StartStatus.RENEWED, StartStatus.REFUSED
PLANS = (("basic", 1), ("premium", 4))
PLAIN = Start()
EVICT = Start(evict_oldest=True, actor=Actor("dev-b"))


async def tick(b: Backend) -> None:
    """Let the store's clock move on, so that the next lease starts later."""
    if b.clock is not None:
        await b.advance(1)
    else:
        await asyncio.sleep(0.003)


def budget(b: Backend) -> int:
    """Starts a minute: 3 on the fake clock; 120 (a 500 ms period) on real servers, to wait less."""
    return 3 if b.clock is not None else 120


async def admit(s: Store, u: str, sid: str, ttl: int, limits: Limits, how: Start = PLAIN) -> StartResult:
    r = await s.start(u, sid, None, ttl, limits, how)
    assert r.status is ADMITTED, r
    assert r.stream is not None
    assert r.epoch is not None
    return r


async def ids(s: Store, u: str) -> list[str]:
    return [x.stream_id for x in (await s.list(u, Limits(100))).streams]


async def renews(s: Store, u: str, sid: str, ttl: int, limits: Limits) -> bool:
    """Whether a heartbeat of ``sid`` renews an active lease (not a tombstone, a miss or a
    re-admission)."""
    beat = await s.heartbeat(u, sid, ttl, limits)
    return beat.stream is not None and not beat.readmitted and beat.ended is None


def evicted(sid: str, at_ms: int, by: str) -> Beat:
    """A heartbeat's answer for a stream ``by`` evicted at ``at_ms``."""
    return Beat(ended=Ended(sid, at_ms, EndReason.EVICTED, by))


# 1. limits: override > plan (an admin's, then the token's hint) > default


def test_limit_resolution_override_then_plan_then_default(backend: Backend) -> None:
    async def body(s: Store, b: Backend) -> None:
        u, ttl = "f-limits", b.ttl_ms * 40
        hinted = Limits(3, PLANS, "premium")

        async def expect(limits: Limits, limit: int, source: str, plan: str | None) -> None:
            info = await s.get_limit(u, limits)
            listed = await s.list(u, limits)
            renewed = await s.start(u, "a", None, ttl, limits, PLAIN)
            assert renewed.status is RENEWED
            assert (info.limit, info.source, info.plan) == (limit, source, plan)
            assert (listed.limit, listed.limit_source, listed.plan) == (limit, source, plan)
            assert (renewed.limit, renewed.limit_source, renewed.plan) == (limit, source, plan)

        first = await admit(s, u, "a", ttl, hinted)
        assert (first.limit, first.limit_source, first.plan) == (4, "plan", "premium")
        await expect(hinted, 4, "plan", "premium")
        await expect(Limits(3, PLANS, "gold"), 3, "default", None)  # names no configured plan
        await expect(Limits(3, PLANS), 3, "default", None)

        basic = await s.set_plan(u, "basic", hinted)
        assert (basic.limit, basic.source, basic.plan) == (1, "plan", "basic")
        await expect(hinted, 1, "plan", "basic")  # the admin's plan beats the token's
        await expect(Limits(3, PLANS), 1, "plan", "basic")
        full = await s.start(u, "b", None, ttl, hinted, PLAIN)
        assert (full.status, full.limit, full.limit_source, full.plan) == (REFUSED, 1, "plan", "basic")

        override = await s.set_limit(u, 2, hinted, Actor("ops"))
        assert (override.limit, override.source) == (2, "user")
        await expect(hinted, 2, "user", override.plan)  # the override beats both plans
        second = await admit(s, u, "b", ttl, hinted)
        assert (second.limit, second.limit_source, second.active) == (2, "user", 2)

        cleared = await s.set_limit(u, None, hinted, Actor("ops"))
        assert (cleared.limit, cleared.source, cleared.plan) == (1, "plan", "basic")
        await expect(hinted, 1, "plan", "basic")
        unplanned = await s.set_plan(u, None, hinted)
        assert (unplanned.limit, unplanned.source, unplanned.plan) == (4, "plan", "premium")
        await expect(hinted, 4, "plan", "premium")
        await expect(Limits(3, PLANS), 3, "default", None)
        await s.set_plan(u, "gold", hinted)  # an admin's plan that is not configured: ignored
        await expect(hinted, 4, "plan", "premium")

    backend.run(body)


# 2. eviction


def test_evict_oldest_admits_and_replaces_the_oldest_stream(backend: Backend) -> None:
    async def body(s: Store, b: Backend) -> None:
        u, ttl, lim = "f-evict", b.ttl_ms * 40, Limits(2)
        a = await s.start(u, "a", "tv", ttl, lim, PLAIN)
        await tick(b)
        await admit(s, u, "b", ttl, lim)
        await tick(b)
        refused = await s.start(u, "c", None, ttl, lim, PLAIN)  # without evict_oldest: as before
        assert (refused.status, refused.evicted) == (REFUSED, ())
        assert [x.stream_id for x in refused.streams] == ["a", "b"]

        c = await s.start(u, "c", "phone", ttl, lim, EVICT)
        assert (c.status, c.active, c.limit) == (ADMITTED, 2, 2)
        assert c.evicted == (a.stream,)  # the oldest, as it was
        assert c.stream is not None
        assert await ids(s, u) == ["b", "c"]
        await s.stop(u, "b", ttl)  # a slot is free: only the tombstone keeps "a" out
        assert await s.heartbeat(u, "a", ttl, lim) == evicted("a", c.stream.started_at_ms, "c")
        assert await ids(s, u) == ["c"]  # the evicted one's heartbeat does not bring it back
        assert await renews(s, u, "c", ttl, lim)
        await tick(b)
        await admit(s, u, "b", ttl, lim)

        await s.set_limit(u, 0, lim)
        zero = await s.start(u, "d", None, ttl, lim, EVICT)  # limit 0: evict_oldest still refuses
        assert (zero.status, zero.evicted, zero.limit) == (REFUSED, (), 0)
        assert await ids(s, u) == ["c", "b"]
        assert await renews(s, u, "b", ttl, lim)

    backend.run(body)


def test_the_oldest_is_the_lowest_epoch_even_on_a_start_time_tie(backend: Backend) -> None:
    """Two admissions in one millisecond: the first has the lower epoch and is the oldest, so
    "watch here instead" evicts the one the downstream fencing rule refuses first, not the one
    with the smaller id."""

    async def body(s: Store, b: Backend) -> None:
        u, ttl, lim = "f-tie", b.ttl_ms * 40, Limits(2)
        s9 = await admit(s, u, "s9", ttl, lim)
        s10 = await admit(s, u, "s10", ttl, lim)  # the fake clock stands still: a tie
        assert s9.stream is not None
        assert s10.stream is not None
        assert s9.epoch is not None
        assert s10.epoch is not None
        assert s9.epoch < s10.epoch
        assert s9.stream.started_at_ms == s10.stream.started_at_ms or b.clock is None
        new = await admit(s, u, "new", ttl, lim, EVICT)
        assert [x.stream_id for x in new.evicted] == ["s9"]  # though "s10" < "s9" by bytes

    backend.run(body)


def test_a_tombstone_lasts_one_lease_ttl_after_the_last_heartbeat_it_answered(backend: Backend) -> None:
    """A device that keeps heartbeating after it was evicted keeps being told so; one that went
    quiet for a lease TTL is a stream like any other the store does not hold."""

    async def body(s: Store, b: Backend) -> None:
        u, ttl, lim = "f-tomb", b.ttl_ms, Limits(1)
        await admit(s, u, "a", ttl, lim)
        r = await admit(s, u, "b", ttl, lim, EVICT)
        assert r.stream is not None
        gone = evicted("a", r.stream.started_at_ms, "b")
        assert await s.heartbeat(u, "a", ttl, lim) == gone
        await b.advance(ttl // 2)
        assert await s.heartbeat(u, "a", ttl, lim) == gone  # the tombstone now lasts to 1.5 TTL
        await b.advance(ttl * 3 // 4)  # past the eviction's TTL: still told
        assert await s.heartbeat(u, "a", ttl, lim) == gone
        await b.advance(ttl + 1)  # quiet for a TTL; b, never heartbeated, has expired too
        back = await s.heartbeat(u, "a", ttl, lim)
        assert (back.ended, back.readmitted) == (None, True)  # no tombstone: admitted again

    backend.run(body)


def test_a_later_eviction_does_not_prolong_an_earlier_tombstone(backend: Backend) -> None:
    async def body(s: Store, b: Backend) -> None:
        u, ttl, lim = "f-tomb2", b.ttl_ms, Limits(1)
        await admit(s, u, "a", ttl, lim)
        await admit(s, u, "b", ttl, lim, EVICT)  # evicts a
        await b.advance(ttl // 2)
        c = await admit(s, u, "c", ttl, lim, EVICT)  # evicts b, half a TTL later
        assert c.stream is not None
        await b.advance(ttl // 2)  # a's tombstone is one TTL old, b's half as old
        assert await s.heartbeat(u, "a", ttl, lim) == Beat()  # no tombstone; c holds the slot
        assert await s.heartbeat(u, "b", ttl, lim) == evicted("b", c.stream.started_at_ms, "c")

    backend.run(body)


def test_readmitting_an_evicted_stream_clears_its_tombstone(backend: Backend) -> None:
    async def body(s: Store, b: Backend) -> None:
        u, ttl, lim = "f-readmit", b.ttl_ms * 40, Limits(1)
        await admit(s, u, "a", ttl, lim)
        await admit(s, u, "b", ttl, lim, EVICT)
        beat = await s.heartbeat(u, "a", ttl, lim)
        assert beat.ended is not None
        assert beat.ended.reason is EndReason.EVICTED
        await s.stop(u, "b", ttl)
        await admit(s, u, "a", ttl, lim)
        assert await renews(s, u, "a", ttl, lim)
        stopped = await s.stop(u, "a", ttl)
        assert stopped.at_ms is not None
        # the stop's own tombstone, not the eviction's come back: that one is gone, not just hidden
        assert await s.heartbeat(u, "a", ttl, lim) == Beat(ended=Ended("a", stopped.at_ms, EndReason.STOPPED))

    backend.run(body)


# 3. epochs


def test_only_admissions_raise_the_epoch(backend: Backend) -> None:
    async def body(s: Store, b: Backend) -> None:
        u, ttl, lim = "f-epoch", b.ttl_ms * 40, Limits(2)
        a = await admit(s, u, "a", ttl, lim)
        bb = await admit(s, u, "b", ttl, lim)
        assert bb.epoch is not None
        assert a.epoch is not None
        assert bb.epoch > a.epoch
        assert (await s.start(u, "a", None, ttl, lim, PLAIN)).epoch == a.epoch  # renewal: its own
        assert (await s.start(u, "c", None, ttl, lim, PLAIN)).epoch is None  # refusal: no lease
        await s.heartbeat(u, "a", ttl, lim)
        await s.stop(u, "b", ttl)
        c = await admit(s, u, "c", ttl, lim)
        d = await admit(s, u, "d", ttl, lim, EVICT)
        assert c.epoch is not None
        assert d.epoch is not None
        assert bb.epoch < c.epoch < d.epoch
        assert (await s.start(u, "d", None, ttl, lim, PLAIN)).epoch == d.epoch
        assert (await s.start(u, "c", None, ttl, lim, PLAIN)).epoch == c.epoch
        e = await admit(s, u, "e", ttl, lim, EVICT)
        assert e.epoch is not None
        assert e.epoch > d.epoch

    backend.run(body)


def test_the_epoch_keeps_rising_after_stop_all_stop_and_expiry(backend: Backend) -> None:
    async def body(s: Store, b: Backend) -> None:
        u, lim = "f-epoch2", Limits(2)
        last = 0
        for i in range(10):  # quick turns: the store's clock often stays on one millisecond
            for sid, after in ((f"x{i}", "stop"), (f"y{i}", "stop_all")):
                r = await admit(s, u, sid, b.ttl_ms, lim)
                assert r.epoch is not None
                assert r.epoch > last, (i, f"after {after}", r.epoch, last)
                last = r.epoch
                if after == "stop":  # what the next admission comes after
                    await s.stop_all(u, b.ttl_ms)
                else:
                    await s.stop(u, sid, b.ttl_ms)
        z = await admit(s, u, "z", b.ttl_ms, lim)
        assert z.epoch is not None
        assert z.epoch > last
        last = z.epoch
        await b.advance(b.ttl_ms)
        assert (await s.list(u, lim)).active == 0
        r = await admit(s, u, "after-expiry", b.ttl_ms, lim)
        assert r.epoch is not None
        assert r.epoch > last

    backend.run(body)


def test_epochs_are_per_user(backend: Backend) -> None:
    async def body(s: Store, b: Backend) -> None:
        ttl, lim = b.ttl_ms * 40, Limits(5)
        mine = await admit(s, "f-ep-u", "a", ttl, lim)
        theirs = [(await admit(s, "f-ep-v", f"v{i}", ttl, lim)).epoch or 0 for i in range(3)]
        assert theirs[0] < theirs[1] < theirs[2]
        assert (await s.start("f-ep-u", "a", None, ttl, lim, PLAIN)).epoch == mine.epoch
        assert (await s.start("f-ep-v", "v0", None, ttl, lim, PLAIN)).epoch == theirs[0]  # its own
        assert ((await admit(s, "f-ep-u", "b", ttl, lim)).epoch or 0) > (mine.epoch or 0)

    backend.run(body)


# 4. the audit trail


def test_events_record_evictions_admin_stops_stop_all_and_limit_changes(backend: Backend) -> None:
    async def body(s: Store, b: Backend) -> None:
        u, ttl, lim = "f-events", b.ttl_ms * 40, Limits(2)
        assert await s.events(u) == ()
        await admit(s, u, "a", ttl, lim)
        await tick(b)
        await admit(s, u, "b", ttl, lim)
        await tick(b)
        c = await admit(s, u, "c", ttl, lim, EVICT)
        await s.stop(u, "b", ttl, Actor("admin-0"))  # not audited
        await s.stop(u, "c", ttl, Actor("admin-1"), audit=True)
        await s.stop(u, "nothing", ttl, Actor("admin-1"), audit=True)  # nothing stopped: nothing recorded
        await s.stop_all(u, ttl, Actor("admin-3"))  # nothing active: nothing recorded
        await admit(s, u, "d", ttl, lim)
        await tick(b)
        await admit(s, u, "e", ttl, lim)
        assert (await s.stop_all(u, ttl, Actor("admin-2"))).stream_ids == ("d", "e")
        await s.set_limit(u, 5, lim, Actor("ops"))
        await s.set_limit(u, None, lim, Actor("ops2"))
        trail = await s.events(u)
        assert [(e.action, e.actor.name, e.streams) for e in trail] == [
            ("limit_cleared", "ops2", ()),
            ("limit_set", "ops", ()),
            ("stopped_all", "admin-2", ("d", "e")),
            ("stopped_by_admin", "admin-1", ("c",)),
            ("evicted", "dev-b", ("a",)),
        ]
        assert c.stream is not None
        assert trail[-1].at_ms == c.stream.started_at_ms
        assert all(newer.at_ms >= older.at_ms for newer, older in pairwise(trail))
        assert await s.events("f-events-other") == ()

    backend.run(body)


def test_stopped_all_lists_the_streams_in_start_order(backend: Backend) -> None:
    async def body(s: Store, b: Backend) -> None:
        u, ttl, lim = "f-stopall", b.ttl_ms * 40, Limits(3)
        for sid in ["z", "a", "m"]:
            await admit(s, u, sid, ttl, lim)
            await tick(b)
        assert await renews(s, u, "z", ttl, lim)  # z now expires last
        assert await ids(s, u) == ["z", "a", "m"]
        stopped = await s.stop_all(u, ttl, Actor("me"))
        assert stopped.stream_ids == ("z", "a", "m")
        assert (await s.stop_all(u, ttl, Actor("me"))).stream_ids == ()
        trail = await s.events(u)
        assert trail == (Event(stopped.at_ms, "stopped_all", Actor("me"), ("z", "a", "m")),)  # once

    backend.run(body)


def test_the_audit_trail_keeps_the_last_100_events_of_each_user(backend: Backend) -> None:
    async def body(s: Store, b: Backend) -> None:
        u, v, lim = "f-trail", "f-trail-other", Limits(3)
        await s.set_limit(v, 1, lim, Actor("theirs"))
        for i in range(101):
            await s.set_limit(u, 2, lim, Actor(f"op{i}"))
        trail = await s.events(u)
        assert [e.actor.name for e in trail] == [f"op{i}" for i in range(100, 0, -1)]  # op0 pushed out
        assert {e.action for e in trail} == {"limit_set"}
        assert [(e.action, e.actor.name) for e in await s.events(v)] == [("limit_set", "theirs")]

    backend.run(body)


# 5. the start budget


def test_the_start_budget_refuses_too_many_admissions(backend: Backend) -> None:
    async def body(s: Store, b: Backend) -> None:
        u, ttl, lim = "f-budget", b.ttl_ms * 40, Limits(1)
        per_min = budget(b)
        how = Start(evict_oldest=True, actor=Actor("dev"), starts_per_min=per_min)
        last = await admit(s, u, "s0", ttl, lim, how)
        for i in range(1, per_min):
            last = await admit(s, u, f"s{i}", ttl, lim, how)
        listed, trail = await s.list(u, lim), await s.events(u)

        late = await s.start(u, "late", None, ttl, lim, how)
        assert (late.status, late.stream, late.evicted) == (StartStatus.TOO_MANY, None, ())
        assert (late.active, late.limit, late.epoch) == (1, 1, None)
        assert 0 < late.retry_after_ms <= 60_000 // per_min
        assert b.clock is None or late.retry_after_ms == 20_000
        assert await s.list(u, lim) == listed  # admitted nothing, evicted nothing
        assert await s.events(u) == trail  # recorded nothing
        assert await s.heartbeat(u, "late", ttl, lim) == Beat()  # not admitted, no slot either
        beat = await s.heartbeat(u, f"s{per_min - 1}", ttl, lim)
        assert beat.stream is not None
        assert beat.stream.epoch == last.epoch

        await b.advance(late.retry_after_ms)
        again = await admit(s, u, "late", ttl, lim, how)
        assert [x.stream_id for x in again.evicted] == [f"s{per_min - 1}"]

    backend.run(body)


def test_refusals_and_renewals_spend_no_budget(backend: Backend) -> None:
    async def body(s: Store, b: Backend) -> None:
        u, ttl, lim = "f-budget2", b.ttl_ms * 40, Limits(1)
        per_min = budget(b)
        plain, evict = Start(starts_per_min=per_min), Start(True, Actor("dev"), per_min)
        await admit(s, u, "s0", ttl, lim, plain)
        for _ in range(5):
            assert (await s.start(u, "other", None, ttl, lim, plain)).status is REFUSED
            assert (await s.start(u, "s0", None, ttl, lim, evict)).status is RENEWED
        for i in range(1, per_min):
            await admit(s, u, f"s{i}", ttl, lim, evict)
        spent = await s.start(u, "one-more", None, ttl, lim, evict)
        assert spent.status is StartStatus.TOO_MANY
        # a heartbeat's re-admission takes a free slot without the budget, and spends none
        await s.stop(u, f"s{per_min - 1}", ttl)
        back = await s.heartbeat(u, "one-more", ttl, lim)
        assert back.readmitted
        retry = await s.start(u, "one-more-again", None, ttl, lim, evict)
        assert retry.status is StartStatus.TOO_MANY
        assert retry.retry_after_ms <= spent.retry_after_ms
        assert b.clock is None or retry.retry_after_ms == spent.retry_after_ms

    backend.run(body)


# 6. evicting starts racing each other


def test_simultaneous_evicting_starts_keep_the_limit(backend: Backend) -> None:
    async def body(s: Store, b: Backend) -> None:
        u, ttl, lim = "f-race", b.ttl_ms * 40, Limits(2)
        wanted = [f"r{i:02d}" for i in range(30)]
        results = await asyncio.gather(*(s.start(u, sid, None, ttl, lim, EVICT) for sid in wanted))
        assert [r.status for r in results] == [ADMITTED] * len(wanted)
        assert len({r.epoch for r in results}) == len(wanted)
        assert all(len(r.evicted) <= 1 for r in results)  # the limit never went down: one at most
        replaced_by = {x.stream_id: sid for sid, r in zip(wanted, results, strict=True) for x in r.evicted}
        active = await ids(s, u)
        assert len(active) == 2
        assert sorted([*active, *replaced_by]) == wanted  # each one still active or evicted once
        for sid, by in replaced_by.items():
            beat = await s.heartbeat(u, sid, ttl, lim)
            assert beat.ended is not None, (sid, beat)
            assert (beat.ended.reason, beat.ended.replaced_by) == (EndReason.EVICTED, by)
        evictions = [e for e in await s.events(u) if e.action == "evicted"]
        assert sorted(e.streams[0] for e in evictions) == sorted(replaced_by)
        assert all(len(e.streams) == 1 and e.actor.name == "dev-b" for e in evictions)

    backend.run(body)


def test_memory_events_expire_when_the_redis_key_would() -> None:
    """Redis drops a key once now > its expiry: at exactly 30 days after the newest event the
    trail is still there, a millisecond later it is gone (memory:// once differed by 1 ms)."""
    clock = FakeClock()
    store = MemoryStore(clock)

    async def main() -> None:
        await store.set_limit("u", 2, Limits(3), Actor("ops"))
        clock.advance(EVENTS_TTL_MS)
        assert [e.action for e in await store.events("u")] == ["limit_set"]
        clock.advance(1)
        assert await store.events("u") == ()

    asyncio.run(main())
