"""Devices on every store (memory, Redis, embedded://, Cluster, Sentinel): same-device reclaim,
streams per device, counting devices, and replacing a named stream. The model (tests/model.py)
checks every path; these pin the examples the README tells."""

from __future__ import annotations

from streamlimit.models import Actor, EndReason, Limits, Start, StartStatus
from streamlimit.store.base import Store
from tests.test_store_contract import Backend, backend, contract

__all__ = ["backend"]  # the fixture, shared with the contract's tests

TV = Start(device_id="tv-1")
ME = Actor("viewer", "player", "jti-1")


def ids(streams: tuple[object, ...]) -> list[str]:
    return [getattr(s, "stream_id") for s in streams]  # noqa: B009 - Stream and Ended alike


@contract
async def test_a_restarted_player_reclaims_its_own_slot_at_once(s: Store, b: Backend) -> None:
    limits = Limits(1)
    first = await s.start("u", "before-crash", "TV", b.ttl_ms, limits, TV)
    assert first.stream is not None
    assert first.stream.device_id == "tv-1"
    again = await s.start("u", "after-restart", "TV", b.ttl_ms, limits, TV)
    assert (again.status, again.active, ids(again.replaced), again.evicted) == (
        StartStatus.ADMITTED,
        1,
        ["before-crash"],
        (),
    )
    beat = await s.heartbeat("u", "before-crash", b.ttl_ms, limits)
    assert beat.ended is not None
    assert (beat.ended.reason, beat.ended.replaced_by) == (EndReason.REPLACED, "after-restart")
    events = await s.events("u")
    assert (events[0].action, events[0].streams, events[0].value, events[0].device_id) == (
        "replaced",
        ("before-crash",),
        "after-restart",
        "tv-1",
    )
    other = await s.start("u", "phone", None, b.ttl_ms, limits, Start())
    assert other.status is StartStatus.REFUSED  # another device still needs a slot


@contract
async def test_a_device_may_hold_streams_per_device_before_its_oldest_is_replaced(
    s: Store, b: Backend
) -> None:
    limits = Limits(3, per_device=2)
    for sid in ("main", "pip"):
        assert (await s.start("u", sid, None, b.ttl_ms, limits, TV)).status is StartStatus.ADMITTED
        await b.advance(1) if b.clock else None
    third = await s.start("u", "zapped", None, b.ttl_ms, limits, TV)
    assert (ids(third.replaced), third.active) == (["main"], 2)
    listed = await s.list("u", limits)
    assert ids(listed.streams) == ["pip", "zapped"]


@contract
async def test_counting_devices_lets_one_device_hold_its_streams_in_one_slot(s: Store, b: Backend) -> None:
    limits = Limits(2, counts="devices", per_device=2)
    await s.start("u", "tv-main", None, b.ttl_ms, limits, TV)
    await s.start("u", "tv-pip", None, b.ttl_ms, limits, TV)
    phone = await s.start("u", "phone", None, b.ttl_ms, limits, Start(device_id="phone-1"))
    assert (phone.status, phone.active) == (StartStatus.ADMITTED, 2)  # two devices, three streams
    listed = await s.list("u", limits)
    assert (listed.active, len(listed.streams), listed.counts, listed.remaining) == (2, 3, "devices", 0)
    laptop = await s.start("u", "laptop", None, b.ttl_ms, limits, Start(device_id="laptop-1"))
    assert laptop.status is StartStatus.REFUSED
    # "watch here instead" by counting devices evicts the oldest device, both of its streams
    evicting = Start(evict_oldest=True, device_id="laptop-1")
    laptop = await s.start("u", "laptop", None, b.ttl_ms, limits, evicting)
    assert (laptop.status, ids(laptop.evicted), laptop.active) == (
        StartStatus.ADMITTED,
        ["tv-main", "tv-pip"],
        2,
    )


@contract
async def test_a_start_replaces_the_stream_the_viewer_chose(s: Store, b: Backend) -> None:
    limits = Limits(2)
    for sid in ("tv", "phone"):
        await s.start("u", sid, None, b.ttl_ms, limits, Start())
        await b.advance(1) if b.clock else None
    chosen = Start(actor=ME, replace="phone")  # not the oldest: the one the viewer picked
    laptop = await s.start("u", "laptop", None, b.ttl_ms, limits, chosen)
    assert (laptop.status, ids(laptop.evicted), laptop.active) == (StartStatus.ADMITTED, ["phone"], 2)
    beat = await s.heartbeat("u", "phone", b.ttl_ms, limits)
    assert beat.ended is not None
    assert (beat.ended.reason, beat.ended.replaced_by) == (EndReason.EVICTED, "laptop")
    events = await s.events("u")
    assert (events[0].action, events[0].streams, events[0].actor) == ("evicted", ("phone",), ME)
    # below the limit too: the named one is stopped all the same
    assert (await s.start("u", "tablet", None, b.ttl_ms, Limits(5), Start(replace="tv"))).evicted[
        0
    ].stream_id == "tv"


@contract
async def test_replacing_a_stream_that_is_not_active_starts_nothing(s: Store, b: Backend) -> None:
    limits = Limits(2)
    await s.start("u", "tv", None, b.ttl_ms, limits, Start())
    missed = await s.start("u", "laptop", None, b.ttl_ms, limits, Start(replace="gone"))
    assert (missed.status, missed.stream, missed.active) == (StartStatus.TARGET_NOT_ACTIVE, None, 1)
    assert ids((await s.list("u", limits)).streams) == ["tv"]
    # a retry of a start that did replace renews it, whatever it names
    await s.start("u", "laptop", None, b.ttl_ms, limits, Start(replace="tv"))
    retry = await s.start("u", "laptop", None, b.ttl_ms, limits, Start(replace="tv"))
    assert retry.status is StartStatus.RENEWED


@contract
async def test_a_device_id_holding_separators_reads_back_whole(s: Store, b: Backend) -> None:
    odd = "12:x|y'z"
    r = await s.start("u", "a", "label|with|bars", b.ttl_ms, Limits(1), Start(device_id=odd))
    assert r.stream is not None
    listed = (await s.list("u", Limits(1))).streams[0]
    assert (listed.device_id, listed.device) == (odd, "label|with|bars")
    again = await s.start("u", "b", None, b.ttl_ms, Limits(1), Start(device_id=odd))
    assert ids(again.replaced) == ["a"]


@contract
async def test_replacing_a_stream_of_ones_own_device_stops_only_that_one(s: Store, b: Backend) -> None:
    limits = Limits(1, counts="devices", per_device=2)
    await s.start("u", "main", None, b.ttl_ms, limits, TV)
    await s.start("u", "pip", None, b.ttl_ms, limits, TV)
    swap = await s.start(
        "u", "other-channel", None, b.ttl_ms, limits, Start(device_id="tv-1", replace="main")
    )
    assert (ids(swap.evicted), swap.replaced, swap.active) == (["main"], (), 1)
    assert ids((await s.list("u", limits)).streams) == ["pip", "other-channel"]
